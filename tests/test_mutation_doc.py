"""The mutation summaries: docs/mutation.md quotes tools/mutants.json (what `make mutants` wrote) and
tools/mutants_census.json (every mutant run so far) as tools/mutants_summary.py renders them; the sample
`make mutants` runs (tools/mutants_sample.py) and the verdict per module, by hand."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_results_tables_and_timing_are_the_committed_json():
    pytest.importorskip("mutmut")  # the summary script reads mutmut's names of the exit codes
    from tools import mutants_sample
    from tools.mutants_summary import table, verdict_table

    made = json.loads((ROOT / "tools" / "mutants.json").read_text())  # what `make mutants` wrote
    census = json.loads((ROOT / "tools" / "mutants_census.json").read_text())  # every mutant run so far
    page = (ROOT / "docs" / "mutation.md").read_text()
    assert made["sample"] == {"per_module": mutants_sample.PER_MODULE, "seed": mutants_sample.SEED}
    assert made["runs"] == ["mutants"] and len(made["seconds"]) == 1
    assert verdict_table(made) in page
    assert f"took {made['seconds'][0] / 60:.1f} minutes" in page
    assert table(census) in page
    assert verdict_table(census) in page
    assert f"{census['seconds_per_mutant']} s per mutant" in page
    for name in made["survivors"] + census["survivors"]:
        assert f"`{name}`" in page, f"the survivor {name} is not discussed in docs/mutation.md"


def test_the_sample_is_every_small_module_and_a_seeded_draw_of_a_large_one():
    pytest.importorskip("mutmut")
    from tools.mutants_sample import draw

    names = [f"pkg.a.x_f__mutmut_{i}" for i in range(1, 6)] + [f"pkg.b.x_g__mutmut_{i}" for i in range(1, 41)]
    drawn = draw(names[::-1], 10, seed=3)
    assert drawn["pkg.a"] == sorted(names[:5])  # 5 <= 10: all of it, sorted
    assert len(drawn["pkg.b"]) == 10 and set(drawn["pkg.b"]) <= set(names[5:]) and drawn["pkg.b"] == sorted(drawn["pkg.b"])
    assert draw(names, 10, seed=3) == drawn  # the order the names come in does not matter
    assert draw(names[5:], 10, seed=3)["pkg.b"] == drawn["pkg.b"]  # nor the other modules
    assert draw(names, 10, seed=4)["pkg.b"] != drawn["pkg.b"]
    assert draw(names, 0) == {"pkg.a": sorted(names[:5]), "pkg.b": sorted(names[5:])}
    with pytest.raises(ValueError, match=r"`per_module` must be 0 \(every mutant\) or a positive count, got -1"):
        draw(names, -1)


def test_mutant_names_are_the_ones_mutmut_runs(tmp_path, monkeypatch, request):
    """Names from mutmut's generator: `module.x_function__mutmut_N`, one per mutation, for targeted functions."""
    pytest.importorskip("mutmut")
    from mutmut.configuration import reset_config

    from tools.mutants_sample import mutant_names, targeted

    monkeypatch.chdir(tmp_path)
    (tmp_path / "setup.cfg").write_text("[mutmut]\nsource_paths = pkg\n")
    reset_config()  # mutmut reads its configuration once, from the working directory
    request.addfinalizer(reset_config)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("def f(a):\n    return a + 1\n\n\ndef g(b):\n    return b\n")
    names = mutant_names(["pkg/m.py"])
    # a + 1 -> a - 1 and a + 2: mutmut's two mutations of f; g (return b) has none
    assert names == ["pkg.m.x_f__mutmut_1", "pkg.m.x_f__mutmut_2"]
    assert targeted(names + ["pkg.m.x_g__mutmut_1"], ["pkg.m.x_g*"]) == ["pkg.m.x_g__mutmut_1"]


def test_a_module_is_judged_on_its_census_when_complete_else_on_its_sample():
    pytest.importorskip("mutmut")
    from tools.mutants_summary import judge

    full = {"m": [f"m.x_f__mutmut_{i}" for i in range(1, 11)]}
    codes = {n: 1 for n in full["m"][:8]} | {"m.x_f__mutmut_9": 0, "m.x_f__mutmut_10": 0}
    # census: 8 killed, 2 survived (one of them equivalent): 8 / 9
    v = judge(codes, {"m.x_f__mutmut_10": "why"}, full, {"m": full["m"][:3]})["m"]
    assert v["basis"] == "census" and v["killed_fraction"] == round(8 / 9, 4) and v["met"] is False
    assert v["census"] == {"killed": 8, "survived": 1, "equivalent": 1} and v["sample"] == {"killed": 3}
    # Wilson interval of 8 of 9 at 95%: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z = 1.95996
    assert v["wilson95"] == pytest.approx([0.5650, 0.9801], abs=1e-4)
    # one unrun mutant outside the sample: judged on the sample (3 of 3 killed)
    codes["m.x_f__mutmut_7"] = None
    v = judge(codes, {}, full, {"m": full["m"][:3]})["m"]
    assert v["basis"] == "sample" and v["killed_fraction"] == 1.0 and v["met"] is True and v["sample_size"] == 3
    # an unrun mutant inside the sample: no verdict yet
    v = judge(codes, {}, full, {"m": full["m"][5:8]})["m"]
    assert v["basis"] == "sample" and v["killed_fraction"] == 1.0 and v["met"] is None
