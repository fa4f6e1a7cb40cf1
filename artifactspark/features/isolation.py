"""Crash isolation: each input's read and processing runs in a forked child of the Python worker.

A file that makes cfitsio segfault (measured: a ``.fits.gz`` whose image extension has
``PCOUNT = -2147483648`` kills cfitsio 4.6's memory driver with SIGSEGV), that aborts a C
library, or that makes the kernel's OOM killer take the process, kills only that child. The
worker sees the child's death through ``waitpid`` and returns the input as quarantined
(``worker_crash``, with the signal or exit code), then goes on with the next input of the same
task: the task never fails, so Spark never retries it and the job completes. Only the culprit is
quarantined; the other inputs of its task are processed each in a fresh child of their own.

Fork is cheap here: the worker has numpy, fitsio and petastorm imported already and the child
shares its pages copy-on-write; the result (the encoded feature row, ~1 MB for a full-size CCD)
comes back pickled through a pipe. ``benchmarks/fuzz_inputs.py --overhead`` measures the cost
against the in-process path (benchmarks/RESULTS.md).

``[store] unit_memory_mb`` (0: no limit) caps the child's address space (RLIMIT_AS) at what the
worker had at fork time plus that many MB, so that a file decompressing to a huge image fails
in its child with a MemoryError (quarantined as ``worker_crash``, "out of memory") instead of
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


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


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


def run_isolated(fn, args: tuple, memory_mb: int = 0):
    """``fn(*args)`` in a forked child. Returns ``(True, result)``; ``(False, detail)`` when the
    child died (signal, exit code, memory exhausted) before handing back its result; ``fn``'s own
    exception comes back as ``(None, "Type: message")``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into the worker's code, never run its atexit hooks
        code = 0
        try:
            os.close(r)
            _limit_memory(memory_mb)
            try:
                out = (True, fn(*args))
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
    os.close(w)
    try:
        data = _read_all(r)  # before waitpid: a large result must not block the child on a full pipe
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and len(data) >= _HEADER.size:
        (n,) = _HEADER.unpack_from(data)
        if len(data) == _HEADER.size + n:
            ok, value = pickle.loads(data[_HEADER.size :])
            return (True, value) if ok else (None, value)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return False, f"worker died: its result was cut short ({len(data)} bytes) while reading this input"
    return False, describe_status(status, memory_mb)


def isolated_unit(work, unit: dict, cfg, label):
    """``work(unit, cfg, label) -> (values, status, reason, detail)`` in a child of its own
    (``[store] isolate_inputs``); a child's death becomes the input's ``worker_crash`` quarantine.
    Inputs already quarantined from their name need no reading: they run in-process."""
    if unit.get("static_reason") or not cfg.store.isolate_inputs:
        return work(unit, cfg, label)
    ok, out = run_isolated(work, (unit, cfg, label), cfg.store.unit_memory_mb)
    if ok:
        return out
    if ok is None:  # a bug past process_unit's own handling (e.g. in encoding the row)
        return None, "quarantined", "unexpected_error", out
    log.warning("%s: %s", unit.get("path"), out)
    return None, "quarantined", "worker_crash", out
