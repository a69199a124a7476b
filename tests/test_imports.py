"""The package's imports go one way: the contracts in `.importlinter`, and no import cycle.

Both read the source only (import-linter and grimp parse it): nothing here
imports siamese_xai or TensorFlow.
"""

from pathlib import Path

import grimp
from importlinter import configuration
from importlinter.application import output
from importlinter.application.use_cases import lint_imports

ROOT = Path(__file__).resolve().parents[1]

# Cycles that are known and allowed, each as the set of its modules: none, every import goes one way.
ALLOWED_CYCLES = []


def _lint(config):
    """Whether every contract of a config file is kept, and import-linter's report (broken contracts' chains too)."""
    configuration.configure()
    with output.console.capture() as captured:
        kept = lint_imports(str(config), no_logo=True, cache_dir=None)
    return kept, captured.get()


def test_the_import_contracts_are_kept():
    kept, report = _lint(ROOT / ".importlinter")
    assert kept, report
    assert "Contracts: 4 kept, 0 broken." in report, report


def test_a_broken_contract_fails_with_its_message(tmp_path):
    # The decoding's layers upside down: the imports inside it are against them.
    config = tmp_path / ".importlinter"
    config.write_text(
        "[importlinter]\nroot_package = siamese_xai\n\n"
        "[importlinter:contract:upside-down]\nname = decoding upside down\ntype = layers\n"
        "containers = siamese_xai.decoding\nlayers =\n    chain : fused : rules\n    exact\n    kinks : twin\n"
        "    evaluator\n"
    )
    kept, report = _lint(config)
    assert not kept
    assert "decoding upside down BROKEN" in report, report
    assert "siamese_xai.decoding.evaluator -> siamese_xai.decoding.exact" in report, report


def _cycles(graph):
    """The strongly connected components of more than one module of the import graph (Tarjan's algorithm)."""
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_but_the_allowed_ones():
    graph = grimp.build_graph("siamese_xai", cache_dir=None)
    cycles = _cycles(graph)
    unexpected = [sorted(c) for c in cycles if c not in ALLOWED_CYCLES]
    assert not unexpected, f"import cycles in siamese_xai: {unexpected}"


def test_the_cycle_check_finds_a_cycle():
    graph = grimp.build_graph("siamese_xai", cache_dir=None)
    graph.add_import(importer="siamese_xai.decoding.chain", imported="siamese_xai.decoding.evaluator")
    assert {"siamese_xai.decoding.chain", "siamese_xai.decoding.evaluator"} in _cycles(graph)
