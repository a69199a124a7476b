"""docs/mutation.md quotes benchmarks/mutants.json as benchmarks/mutants_summary.py renders it."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_results_table_and_timing_are_the_committed_json():
    pytest.importorskip("mutmut")  # the summary script reads mutmut's names of the exit codes
    from benchmarks.mutants_summary import table

    summary = json.loads((ROOT / "benchmarks" / "mutants.json").read_text())
    page = (ROOT / "docs" / "mutation.md").read_text()
    assert table(summary) in page
    assert f"{summary['seconds_per_mutant']} s per mutant" in page
    for name in summary["survivors"]:
        assert f"`{name}`" in page, f"the survivor {name} is not discussed in docs/mutation.md"
