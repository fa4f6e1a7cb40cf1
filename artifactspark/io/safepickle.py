"""Checking a pickle without running it.

Petastorm keeps a dataset's Unischema as a pickle in ``_common_metadata``; unpickling runs
whatever callables the pickle names (petastorm issue #741: its restricted unpickler lets a
``builtins.getattr`` / ``builtins.__import__`` chain through). :func:`check_pickle` walks the
opcodes with :func:`pickletools.genops` (which decodes, never executes) and accepts the pickle
only when every global it imports is on an allow-list. ``STACK_GLOBAL`` takes its module and
name from the stack: they must be string constants pushed right before it (directly or from the
memo); anything computed is refused. Extension-registry opcodes (``EXT1/2/4``) are refused.
"""

from __future__ import annotations

import pickletools

from ..errors import UnsafeStore

_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_GETS = {"GET", "BINGET", "LONG_BINGET"}
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_REFUSED = {"EXT1", "EXT2", "EXT4"}


def pickle_globals(data: bytes, what: str = "pickle") -> list[tuple[str, str]]:
    """Every (module, name) the pickle imports, in order, without unpickling it.

    UnsafeStore when a global's module or name is not a string constant, on an extension-registry
    opcode, or when the bytes are not a well-formed pickle."""
    found: list[tuple[str, str]] = []
    memo: dict[int, object] = {}
    pushed: list[object] = []  # what the last opcodes pushed: a str constant, or None (anything else)
    try:
        for op, arg, pos in pickletools.genops(data):
            name = op.name
            if name in _REFUSED:
                raise UnsafeStore(f"{what}: opcode {name} at byte {pos} (extension registry) is not allowed")
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.append((module, attr))
                pushed.append(None)
            elif name == "STACK_GLOBAL":
                if len(pushed) < 2 or not isinstance(pushed[-1], str) or not isinstance(pushed[-2], str):
                    raise UnsafeStore(
                        f"{what}: STACK_GLOBAL at byte {pos} imports a name that is not a plain string "
                        "constant (a computed import): refused"
                    )
                found.append((pushed[-2], pushed[-1]))
                pushed[-2:] = [None]
            elif name in _STRINGS:
                pushed.append(arg.decode("latin-1") if isinstance(arg, bytes) else str(arg))
            elif name in _GETS:
                pushed.append(memo.get(arg))
            elif name == "MEMOIZE":
                memo[len(memo)] = pushed[-1] if pushed else None
            elif name in _PUTS:
                memo[arg] = pushed[-1] if pushed else None
            elif name in ("FRAME", "PROTO"):
                pass  # framing: no effect on the stack
            else:
                pushed.append(None)
    except UnsafeStore:
        raise
    except Exception as e:  # genops: truncated or garbled bytes
        raise UnsafeStore(f"{what}: not a well-formed pickle ({e})") from e
    return found


def check_pickle(data: bytes, allowed: frozenset, what: str = "pickle", advice: str = "") -> None:
    """UnsafeStore unless every global of the pickle ``data`` is one of ``allowed``
    ((module, name) pairs). Nothing is unpickled."""
    for module, attr in pickle_globals(data, what):
        if (module, attr) not in allowed:
            raise UnsafeStore(
                f"{what} imports {module}.{attr}, which the feature schema never uses: refused "
                f"without unpickling it (a tampered or foreign store could run code this way). {advice}".rstrip()
            )
