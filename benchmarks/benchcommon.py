"""Shared by the benchmarks."""

import threading
import time


class RSSWatcher(threading.Thread):
    """Peak RSS of any single pyspark Python worker process (polls every 50 ms)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = 0
        self.stop = threading.Event()

    def run(self):
        import psutil

        me = psutil.Process()
        while not self.stop.is_set():
            for p in me.children(recursive=True):
                try:
                    if "python" in p.name():
                        self.peak = max(self.peak, p.memory_info().rss)
                except psutil.Error:
                    pass
            time.sleep(0.05)
