"""Start and stop a real Spark standalone cluster on loopback, for integration tests.

    with StandaloneCluster(tmp_path / "cluster", n_workers=2) as cluster:
        os.environ["PYSPARK_PYTHON"] = sys.executable      # see below
        spark = (SparkSession.builder.master(cluster.master_url)
                 .config("spark.executor.cores", "1").config("spark.executor.memory", "1g")
                 .getOrCreate())
        ...
        spark.stop()

It runs the master and the workers through the ``bin/spark-class`` of the pip-installed
pyspark (so the cluster's Spark is exactly the driver's Spark), with:

* every address on 127.0.0.1 (``--host`` plus ``SPARK_LOCAL_IP``);
* ports chosen at run time (a socket bound to port 0), and the ports actually bound read
  back from the master's log, so parallel runs do not clash; the master's REST submission
  server (fixed port 6066 by default) is switched off;
* a hermetic environment: inherited ``SPARK_*`` variables are dropped, ``SPARK_HOME`` is the
  pyspark package, ``SPARK_CONF_DIR`` an empty directory under ``workdir``, and each worker's
  scratch space (``--work-dir`` and ``SPARK_LOCAL_DIRS``) lives under ``workdir``;
* each process's stdout and stderr in ``workdir/logs/<name>.log``;
* each process in its own session (``start_new_session=True``).  The executors a worker
  launches, and their Python daemons and workers, stay in that session (pyspark's daemon
  moves to its own process *group*, but not to a new session), so stopping or killing a
  worker means signalling every process of its session.  This uses ``/proc`` (Linux).

Python executors: the interpreter the executors run is chosen by the *driver*
(``PYSPARK_PYTHON`` in the driver's environment, or ``spark.pyspark.python``), so callers
must set ``os.environ["PYSPARK_PYTHON"] = sys.executable`` (and the driver should use
``SPARK_LOCAL_IP=127.0.0.1`` / ``spark.driver.host=127.0.0.1``) before building the
SparkSession.  The cluster also sets ``PYSPARK_PYTHON=sys.executable`` in the environment
of the master and workers it starts.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
LOOPBACK = "127.0.0.1"


def pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def spark_class() -> Path:
    return pyspark_home() / "bin" / "spark-class"


def free_port() -> int:
    """A port free right now on loopback (another process may still take it before we do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _proc_stat(pid: int):
    """(state, ppid, pgrp, session) of a process from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3])


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is ``sid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _proc_stat(int(entry))
        if st is not None and st[3] == sid and st[0] not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(lines[-n:])


class _Daemon:
    """One spark-class process; its session id is its pid (start_new_session=True)."""

    def __init__(self, name: str, argv: list[str], env: dict, log_path: Path, cwd: Path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=str(cwd),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            self._log.close()
            raise
        self.sid = self.proc.pid

    def members(self) -> list[int]:
        self.proc.poll()  # reap our direct child if it has exited
        return session_pids(self.sid)

    def signal_all(self, sig: int) -> None:
        """Send ``sig`` to every process of the session (and to their process groups)."""
        for pid in self.members():
            st = _proc_stat(pid)
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            if st is not None:
                try:
                    os.killpg(st[2], sig)
                except (ProcessLookupError, PermissionError):
                    pass

    def close(self) -> None:
        self.proc.poll()
        self._log.close()


class StandaloneCluster:
    """A Spark standalone master plus ``n_workers`` workers on 127.0.0.1."""

    def __init__(self, workdir, n_workers: int = 2, cores_per_worker: int = 1, memory_per_worker: str = "2g"):
        self.workdir = Path(workdir).resolve()
        self.n_workers = n_workers
        self.cores_per_worker = cores_per_worker
        self.memory_per_worker = memory_per_worker
        self.log_dir = self.workdir / "logs"
        self.master_port = free_port()
        self.webui_port = free_port()
        self.master: _Daemon | None = None
        self.workers: list[_Daemon] = []
        self._stopped = False

    # ----------------------------------------------------------------------------- addresses
    @property
    def master_url(self) -> str:
        return f"spark://{LOOPBACK}:{self.master_port}"

    @property
    def webui_url(self) -> str:
        return f"http://{LOOPBACK}:{self.webui_port}"

    # ---------------------------------------------------------------------------- lifecycle
    def _env(self, extra: dict | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPARK_")}
        conf_dir = self.workdir / "conf"
        conf_dir.mkdir(parents=True, exist_ok=True)
        env.update(
            {
                "SPARK_HOME": str(pyspark_home()),
                "SPARK_CONF_DIR": str(conf_dir),
                "SPARK_LOCAL_IP": LOOPBACK,
                "PYSPARK_PYTHON": sys.executable,
                # No REST submission server: it would want the fixed port 6066.
                "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
            }
        )
        env.pop("PYSPARK_DRIVER_PYTHON", None)
        env.update(extra or {})
        return env

    def start(self, timeout: float = 90) -> StandaloneCluster:
        """Start master and workers; return once the master lists ``n_workers`` ALIVE workers."""
        if self.master is not None:
            raise RuntimeError("StandaloneCluster.start() called twice")
        deadline = time.monotonic() + timeout
        self.log_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        cls = str(spark_class())
        try:
            self.master = _Daemon(
                "master",
                [
                    cls,
                    MASTER_CLASS,
                    "--host",
                    LOOPBACK,
                    "--port",
                    str(self.master_port),
                    "--webui-port",
                    str(self.webui_port),
                ],
                self._env(),
                self.log_dir / "master.log",
                self.workdir,
            )
            self._wait_for_master(deadline)
            for i in range(self.n_workers):
                wdir = self.workdir / f"worker-{i}"
                (wdir / "work").mkdir(parents=True, exist_ok=True)
                (wdir / "local").mkdir(parents=True, exist_ok=True)
                self.workers.append(
                    _Daemon(
                        f"worker-{i}",
                        [
                            cls,
                            WORKER_CLASS,
                            self.master_url,
                            "--host",
                            LOOPBACK,
                            "--cores",
                            str(self.cores_per_worker),
                            "--memory",
                            self.memory_per_worker,
                            "--webui-port",
                            str(free_port()),
                            "--work-dir",
                            str(wdir / "work"),
                        ],
                        self._env({"SPARK_LOCAL_DIRS": str(wdir / "local")}),
                        self.log_dir / f"worker-{i}.log",
                        self.workdir,
                    )
                )
            while True:
                self._check_running()
                if self.alive_workers() >= self.n_workers:
                    return self
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        self._failure(
                            f"only {self.alive_workers()} of {self.n_workers} workers ALIVE after {timeout:.0f} s"
                        )
                    )
                time.sleep(0.5)
        except BaseException:
            self.stop()
            raise

    def _wait_for_master(self, deadline: float) -> None:
        """Wait for the master's web UI to answer; take the bound ports from the master itself.

        Spark moves to port+1, +2.. if a chosen port was taken meanwhile, so the web UI port is
        read back from the master's log and the RPC port from its JSON status.
        """
        while True:
            self._check_running()
            text = self.master.log_path.read_text(errors="replace")
            m = re.search(r"Successfully started service 'MasterUI' on port (\d+)", text)
            if m:
                self.webui_port = int(m.group(1))
            try:
                st = self.status()
            except (OSError, ValueError):
                st = None
            if st is not None:
                m = re.fullmatch(r"spark://[^:/]+:(\d+)", st.get("url", ""))
                if m:
                    self.master_port = int(m.group(1))
                return
            if time.monotonic() > deadline:
                raise RuntimeError(self._failure("master did not come up"))
            time.sleep(0.3)

    def _check_running(self) -> None:
        for d in [self.master, *self.workers]:
            if d is not None and d.proc.poll() is not None:
                raise RuntimeError(self._failure(f"{d.name} exited with code {d.proc.returncode}"))

    def _failure(self, what: str) -> str:
        parts = [
            f"Spark standalone cluster: {what} (master {self.master_url}, "
            f"web UI {self.webui_url}, logs in {self.log_dir})"
        ]
        for d in [self.master, *self.workers]:
            if d is not None:
                parts.append(f"--- tail of {d.log_path} ---\n{_tail(d.log_path)}")
        return "\n".join(parts)

    # ---------------------------------------------------------------------------- status
    def status(self, timeout: float = 5) -> dict:
        """The master's JSON status (``/json/``)."""
        with urllib.request.urlopen(f"{self.webui_url}/json/", timeout=timeout) as r:
            return json.load(r)

    def alive_workers(self) -> int:
        try:
            st = self.status()
        except (OSError, ValueError):
            return 0
        return sum(1 for w in st.get("workers", []) if w.get("state") == "ALIVE")

    def pids(self) -> list[int]:
        """Every live process of the cluster: daemons, executors, Python daemons and workers."""
        return sorted(p for d in [self.master, *self.workers] if d is not None for p in d.members())

    # ---------------------------------------------------------------------------- faults / stop
    def kill_worker(self, i: int) -> None:
        """SIGKILL worker ``i`` with its executors and their Python processes (a lost node).

        The master notices the dropped connection and marks the worker DEAD within seconds.
        """
        d = self.workers[i]
        deadline = time.monotonic() + 10
        while d.members() and time.monotonic() < deadline:
            d.signal_all(signal.SIGKILL)
            time.sleep(0.1)
        d.proc.poll()

    def stop(self, grace: float = 5) -> None:
        """Stop everything: SIGTERM, then SIGKILL after ``grace`` seconds.  Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        daemons = [*self.workers, *([self.master] if self.master is not None else [])]
        try:
            for d in daemons:
                d.signal_all(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while any(d.members() for d in daemons) and time.monotonic() < deadline:
                time.sleep(0.2)
            deadline = time.monotonic() + 10
            while any(d.members() for d in daemons):
                for d in daemons:
                    d.signal_all(signal.SIGKILL)
                if time.monotonic() > deadline:
                    left = [p for d in daemons for p in d.members()]
                    raise RuntimeError(f"Spark cluster processes survive SIGKILL: {left}")
                time.sleep(0.1)
            for d in daemons:
                try:
                    d.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            for d in daemons:
                d.close()
            try:
                atexit.unregister(self.stop)
            except Exception:
                pass

    def __enter__(self) -> StandaloneCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
