"""The package's import graph (ARCHITECTURE.md): no import cycle between modules, and the stages
depend on each other one way only.

Every ``import`` and ``from ... import`` in ``artifactspark/`` counts, also the ones inside
functions (a lazy import is still a dependency: today's lazy import is tomorrow's cycle).
"""

import ast
from pathlib import Path

from conftest import ROOT

PKG = "artifactspark"
PKG_DIR = ROOT / PKG

#: The unit each module belongs to: its subpackage, or for the top-level modules their role.
TOP_LEVEL = {
    "artifactspark": "core",
    "artifactspark.errors": "errors",
    "artifactspark.config": "core",
    "artifactspark.logs": "core",
    "artifactspark.progress": "core",
    "artifactspark.spark": "core",
    "artifactspark.cli": "core",
    "artifactspark.demo": "app",
}
STAGES = ("io", "features", "sim", "evaluate", "models", "serve")
#: unit -> the units its modules may import. Everything may import errors; io nothing else of ours.
ALLOWED = {
    "errors": set(),
    "io": {"errors"},
    "core": {"errors", "io"},
    "features": {"errors", "io", "core"},
    "sim": {"errors", "io", "core", "features"},
    "evaluate": {"errors", "core", "sim"},
    "models": {"errors", "io", "core", "features", "evaluate"},
    "serve": {"errors", "io", "core", "features", "models"},
    "app": {"errors", "io", "core", "features", "sim", "evaluate", "models", "serve"},
}
#: Pairs that must never import each other, in either direction, whatever ALLOWED says.
NEVER = [("sim", "models")]
#: Lines of a module as ruff formats it (~400 in the tree's denser style before ruff format);
#: modules allowed over it because they hold one thing (a reason each).
MAX_LINES = 500
ONE_THING = {
    "artifactspark.sim.artifacts": "one injector per exposure-checker class",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG_DIR.rglob("*.py"))}


def unit_of(mod: str) -> str:
    if mod in TOP_LEVEL:
        return TOP_LEVEL[mod]
    stage = mod.split(".")[1]
    assert stage in STAGES, f"{mod}: a new top-level module or package; give it a unit in tests/test_layout.py"
    return stage


def imports_of(mod: str, path: Path, known: set[str]) -> set[str]:
    """The artifactspark modules ``mod`` imports (absolute names)."""
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == PKG)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PKG:
                continue
            for a in node.names:  # ``from pkg import module`` imports the module
                out.add(f"{target}.{a.name}" if f"{target}.{a.name}" in known else target)
    out.discard(mod)
    unknown = out - known
    assert not unknown, f"{mod} imports {sorted(unknown)}, which do not exist"
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports_of(m, p, set(mods)) for m, p in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(g.get(m, ())):
            if state.get(n) == "open":
                return stack[stack.index(n) :] + [n]
            if n not in state and (c := visit(n)):
                return c
        state[m] = "done"
        stack.pop()
        return None

    for m in sorted(g):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_modules():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_stages_depend_on_each_other_one_way():
    bad = sorted(
        f"{a} ({unit_of(a)}) imports {b} ({unit_of(b)})"
        for a, deps in graph().items()
        for b in deps
        if unit_of(a) != unit_of(b) and unit_of(b) not in ALLOWED[unit_of(a)]
    )
    assert not bad, "dependencies against ARCHITECTURE.md:\n" + "\n".join(bad)


def test_the_allowed_unit_graph_is_itself_one_way():
    assert find_cycle(ALLOWED) is None
    for x, y in NEVER:
        assert y not in ALLOWED[x] and x not in ALLOWED[y]
    assert ALLOWED["io"] == {"errors"}


def test_every_module_has_a_unit_and_a_bounded_size():
    for mod, path in modules().items():
        unit_of(mod)
        n = len(path.read_text().splitlines())
        assert n <= MAX_LINES or mod in ONE_THING, f"{mod} has {n} lines: split it by topic (tests/test_layout.py)"


def test_the_checks_see_a_forbidden_import(tmp_path):
    """The graph is read from the source as written: a lazy import of models from sim shows."""
    fake = PKG_DIR / "sim" / "archive.py"
    src = fake.read_text() + "\n\ndef _x():\n    from ..models import cnn\n"
    mods = set(modules())
    path = tmp_path / "archive.py"
    path.write_text(src)
    deps = imports_of("artifactspark.sim.archive", path, mods)
    assert "artifactspark.models.cnn" in deps
