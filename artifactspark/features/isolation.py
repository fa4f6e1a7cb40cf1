"""Crash isolation: the inputs of a task are read and processed in a forked child of the Python
worker, never in the worker itself.

A file that makes cfitsio segfault (found by the input fuzzer: a ``.fits.gz`` whose image
extension has ``PCOUNT = -2147483648`` -> SIGSEGV; a ``.fits.fz`` whose ZNAXIS2 is an empty
string -> SIGFPE), that aborts a C library, or that makes the kernel's OOM killer take the
process, kills only the child. The worker sees the death through ``waitpid``, returns the input
in flight as quarantined (``worker_crash``, with the signal or exit code) and forks a new child
for the task's remaining inputs: the task never fails, so Spark never retries it and the job
completes, and only the culprit is quarantined.

One child serves a whole task (``[store] ccds_per_task`` inputs), so its heap stays warm from one
input to the next; it inherits the worker's imports (numpy, fitsio, petastorm) copy-on-write and
sends each encoded feature row (~0.8 MB for a full-size CCD) back pickled through a pipe as soon
as it is ready. ``benchmarks/bench_isolation.py`` measures the cost against the in-process path.

``[store] unit_memory_mb`` (0: no limit) caps the child's address space (RLIMIT_AS) at what the
worker had at fork time plus that many MB, so that a file decompressing to a huge image fails
in the child with a MemoryError (quarantined as ``worker_crash``, "out of memory") instead of
growing until the kernel or YARN kills the executor.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import struct

#: Exit code of a child whose work raised MemoryError (under the unit memory limit).
EXIT_OOM = 86
#: Exit code of a child whose work raised anything else (process_unit never should).
EXIT_ERROR = 87
_HEADER = struct.Struct("!Q")
log = logging.getLogger(__name__)


def _vm_size_bytes() -> int:
    """This process's current virtual address space (VmSize), 0 if /proc is not there."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _limit_memory(memory_mb: int) -> None:
    import resource

    if memory_mb <= 0:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    want = _vm_size_bytes() + memory_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft == resource.RLIM_INFINITY or want < soft:
        resource.setrlimit(resource.RLIMIT_AS, (want, hard))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def describe_status(status: int, memory_mb: int = 0) -> str:
    """A child's ``waitpid`` status as the quarantine detail."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " (the kernel's OOM killer or a memory limit)" if sig == signal.SIGKILL else ""
        return f"worker died: {name} (signal {sig}){hint} while reading this input"
    code = os.WEXITSTATUS(status)
    if code == EXIT_OOM:
        limit = f" of {memory_mb} MB ([store] unit_memory_mb)" if memory_mb > 0 else ""
        return f"worker died: out of memory (MemoryError under the per-input limit{limit}) while reading this input"
    return f"worker died: exit code {code} while reading this input"


def _child(fn, items, w: int, memory_mb: int):
    """The child: ``fn(item)`` for each item in turn, each result framed into the pipe as soon as
    it is ready. Never returns into the worker's code, never runs its atexit hooks."""
    code = 0
    try:
        _limit_memory(memory_mb)
        for item in items:
            try:
                out = (True, fn(item))
            except MemoryError:
                raise
            except Exception as e:  # a bug in fn: reported with its message, as an error
                out = (False, f"{type(e).__name__}: {e}"[:2000])
            payload = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
            _write_all(w, _HEADER.pack(len(payload)) + payload)
    except MemoryError:
        code = EXIT_OOM
    except BaseException:  # noqa: BLE001 - e.g. an unpicklable result: the exit code says so
        code = EXIT_ERROR
    finally:
        os._exit(code)


def run_isolated_many(fn, items: list, memory_mb: int = 0):
    """``fn(item)`` for every item, in a forked child; yields ``(item, ok, value)`` in order as
    the results arrive: ``ok`` True with fn's result, None with ``"Type: message"`` when fn
    raised, False with the death's description when the child died while on that item. After a
    death, a new child takes the items after the culprit: one crash costs one item, and one fork
    serves a whole task otherwise (its heap stays warm from one item to the next)."""
    pending = list(items)
    while pending:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _child(fn, pending, w, memory_mb)
        os.close(w)
        buf = bytearray()
        try:
            while True:  # read as the child writes: a full pipe must never block it
                chunk = os.read(r, 1 << 20)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= _HEADER.size:
                    (n,) = _HEADER.unpack_from(buf)
                    if len(buf) < _HEADER.size + n:
                        break
                    ok, value = pickle.loads(bytes(buf[_HEADER.size : _HEADER.size + n]))
                    del buf[: _HEADER.size + n]
                    yield pending.pop(0), (True if ok else None), value
        finally:
            os.close(r)
            _, status = os.waitpid(pid, 0)
        if pending:  # the child ended before the item in flight was done: that item is the culprit
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                detail = f"worker died: its result was cut short ({len(buf)} bytes) while reading this input"
            else:
                detail = describe_status(status, memory_mb)
            yield pending.pop(0), False, detail


def run_isolated(fn, args: tuple, memory_mb: int = 0):
    """``fn(*args)`` in a forked child: ``(True, result)``, ``(None, "Type: message")`` if fn
    raised, ``(False, detail)`` if the child died first (signal, exit code, memory exhausted)."""
    for _, ok, value in run_isolated_many(lambda a: fn(*a), [args], memory_mb):
        return ok, value


def process_units(work, units: list, cfg, labels: dict):
    """``work(unit, cfg, label) -> (values, status, reason, detail)`` for each unit of a task;
    yields ``(unit, result)``. With ``[store] isolate_inputs`` the units that need reading run in
    one forked child per task (a new one after a crash); a child's death becomes the culprit's
    ``worker_crash`` quarantine. Units already quarantined from their name and size run here."""

    def label(u):
        return labels.get((u["expnum"], u["ccdnum"])) if u["expnum"] is not None else None

    to_read = []
    for u in units:
        if u.get("static_reason") or not cfg.store.isolate_inputs:
            yield u, work(u, cfg, label(u))
        else:
            to_read.append(u)
    for u, ok, out in run_isolated_many(lambda u: work(u, cfg, label(u)), to_read, cfg.store.unit_memory_mb):
        if ok:
            yield u, out
        elif ok is None:  # a bug past process_unit's own handling (e.g. in encoding the row)
            yield u, (None, "quarantined", "unexpected_error", out)
        else:
            log.warning("%s: %s", u.get("path"), out)
            yield u, (None, "quarantined", "worker_crash", out)
