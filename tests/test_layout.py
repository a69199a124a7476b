"""The package's shape: library apart from the harness, no private imports, short modules."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "siamese_xai").rglob("*.py"))  # subpackages too
HARNESS = (sorted((ROOT / "benchmarks").rglob("*.py")) + sorted((ROOT / "reproduce").glob("*.py"))
           + sorted((ROOT / "tools").glob("*.py")))
HARNESS_MODULES = {p.stem for p in HARNESS}


def _imports(path):
    """(module, name) for every import in a file; name is None for `import module`."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield from ((node.module or "", alias.name) for alias in node.names)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT / "siamese_xai")))
def test_the_library_does_not_import_the_harness(path):
    wrong = [m for m, _ in _imports(path) if m.split(".")[0] in HARNESS_MODULES | {"benchmarks", "reproduce", "tools"}]
    assert not wrong, f"{path.name} imports the harness: {wrong}"


@pytest.mark.parametrize("path", HARNESS + sorted((ROOT / "siamese_xai" / "cli").glob("*.py")), ids=lambda p: p.name)
def test_scripts_import_no_private_names(path):
    private = [
        f"{m}.{n}" if n else m
        for m, n in _imports(path)
        if (n or "").startswith("_") and m != "__future__"
        or m.startswith("siamese_xai") and any(part.startswith("_") for part in m.split("."))
    ]
    assert not private, f"{path.name} imports private names: {private}"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT / "siamese_xai")))
def test_library_modules_stay_under_500_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 500, f"{path.name} has {lines} lines"


@pytest.mark.parametrize("path", HARNESS + sorted((ROOT / "siamese_xai" / "cli").glob("*.py")), ids=lambda p: p.name)
def test_what_scripts_import_from_the_library_exists(path):
    # A script is run by hand or by make, not by the suite: an import of a name the
    # library no longer has would only show when someone runs it.
    import importlib

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "siamese_xai":
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), (
                    f"{path.name}: from {node.module} import {alias.name}"
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "siamese_xai":
                    importlib.import_module(alias.name)


@pytest.mark.parametrize("path", HARNESS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_harness_imports_its_own_modules_through_its_package(path):
    # `import paper` worked only with reproduce/ on sys.path; `from reproduce import paper` works from the root
    bare = [m for m, _ in _imports(path) if m.split(".")[0] in HARNESS_MODULES]
    assert not bare, f"{path.name} imports harness modules by bare name: {bare}"


def test_reproduce_and_benchmarks_are_packages_and_nothing_edits_sys_path():
    packages = [ROOT / "reproduce", ROOT / "tools", ROOT / "benchmarks", *(p.parent for p in HARNESS)]
    assert all((p / "__init__.py").is_file() for p in packages), [str(p) for p in packages if not (p / "__init__.py").is_file()]
    import re

    edit = re.compile(r"sys\.path\.(insert|append)\(")
    edits = [f"{p.relative_to(ROOT)}:{i}" for p in HARNESS + sorted((ROOT / "tests").glob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1) if edit.search(line)]
    assert not edits, edits


def _harness_module(path):
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_no_harness_module_imports_one_that_imports_it_back():
    # e.g. two speed benchmarks sharing a timing helper: the helper goes into a module both import
    names = {_harness_module(p): p for p in HARNESS}
    edges = {}
    for name, path in names.items():
        found = set()
        for module, alias in _imports(path):
            for target in (f"{module}.{alias}", module):
                if target in names and target != name:
                    found.add(target)
                    break
        edges[name] = found
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for name in sorted(names):
        if name not in state:
            visit(name, [name])
    assert not cycles, f"import cycles in the harness: {cycles}"
