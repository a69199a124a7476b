"""The README's Python examples run as written (in a folder where `runs/paper` is a trained run)."""

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def block(marker):
    """The one README Python block that contains `marker`."""
    found = [b for b in python_blocks() if marker in b]
    assert len(found) == 1, f"{len(found)} README blocks contain {marker!r}"
    return found[0]


def test_readme_has_the_examples():
    blocks = python_blocks()
    assert len(blocks) == 2
    block("paper.explain(")
    block("fit_explainer(")


@pytest.fixture
def project_folder(tiny_run, tmp_path, monkeypatch):
    """A working folder with `runs/paper` (the tiny trained run) and `my_embedding.keras` (its tower)."""
    run_dir, _ = tiny_run
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "paper").symlink_to(run_dir, target_is_directory=True)
    (tmp_path / "my_embedding.keras").symlink_to(run_dir / "snn.keras")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_protocol_example_runs_as_written(project_folder):
    """Two estimators, three questions, each result read, saved and drawn with the same calls."""
    from siamese_xai import Explanation, ProbeExplanation

    namespace = {}
    exec(compile(block("paper.explain("), "README.md (Explain your Siamese network)", "exec"), namespace)
    e, why_4, p, v = (namespace[k] for k in ("e", "why_4", "p", "v"))
    assert isinstance(e, Explanation) and len(e) == 8 and e.config.estimator == "mc"
    assert int(why_4.explained_class[0]) == 4
    assert isinstance(p, ProbeExplanation) and len(p) == 8 and p.ranking.shape == p.mask.shape == (8, 28, 28, 1)
    assert p.question == {"kind": "contrast"} and (p.n_calls > 0).all() and p.flips.dtype == bool
    assert v.question == {"kind": "verify", "threshold": 0.5} and (v.explained_class == -1).all()
    for name, result in (("paper", e), ("probe", p), ("verify", v)):
        back = type(result).load(f"{name}.npz")
        assert back.fields == result.fields and (back.mask == result.mask).all()
        assert os.path.getsize(f"{name}.png") > 1000


def test_own_network_example_runs_as_written(project_folder):
    # Trains the autoencoder and decoder on 2,000 MNIST images, one epoch per stage, as the README says.
    namespace = {}
    exec(compile(block("fit_explainer("), "README.md (Your own Siamese network)", "exec"), namespace)
    e = namespace["explainer"].explain(namespace["x"][:2])
    assert len(e) == 2 and e.mask.any()


DOCS = sorted((README.parent / "docs").glob("*.md"))


def test_readme_is_a_short_front_page():
    assert len(README.read_text().splitlines()) <= 250
    headings = [line for line in README.read_text().splitlines() if line.startswith("## ")]
    assert headings[:5] == ["## Install", "## Explain your Siamese network", "## Reproduce the paper",
                            "## Command line", "## Results"]


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_pages_speak_of_the_project_only(page):
    # the log file `sessions.jsonl` is a name in the code, not a word about the project's history
    text = page.read_text().replace("sessions.jsonl", "")
    for word in (r"\bissues?\b", r"\bsessions?\b", r"\.\./shared", r"\bshared/", r"\bhelpers?\b", r"\bthe lead\b"):
        found = re.search(word, text, flags=re.I)
        assert not found, f"{page.name}: {text[max(0, found.start() - 60): found.end() + 60]!r}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_links_stay_inside_the_repository_and_resolve(page):
    root = README.parent.resolve()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        assert "://" not in target, f"{page.name} links outside the repository: {target}"
        path = (page.parent / target).resolve()
        assert path.is_relative_to(root) and path.exists(), f"{page.name}: {target} does not resolve"


README_METHODS = {"`probe`": "probe", "its raw map `probe_raw`": "probe_raw", "distance explainer": "distance_explainer",
                  "distance explainer by the margin": "distance_explainer_margin", "input intensity": "intensity",
                  "occlusion by the margin": "occlusion_margin", "KernelSHAP by the margin": "kernelshap_margin",
                  "; occlusion": "occlusion", "`mc`": "mc", "; KernelSHAP": "kernelshap",
                  "IG by the margin": "integrated_gradients_margin", "gradient by the margin": "gradient_margin"}


def test_faithfulness_row_quotes_the_committed_results():
    """The README's faithfulness row is benchmarks/evaluation/results.json's MNIST ROAD (most relevant first) as written."""
    import json

    results = json.loads((README.parent / "benchmarks" / "evaluation" / "results.json").read_text())
    row = next(line for line in README.read_text().splitlines() if line.startswith("| faithfulness on "))
    records = {r["method"]: r for r in results["records"] if r["dataset"] == "mnist"}
    n = results["datasets"]["mnist"]["n_images"]
    assert row.startswith(f"| faithfulness on {n:,} MNIST test images (ROAD, most relevant first")
    assert f"`benchmarks/evaluation/results.json` ({results['mode']} mode)" in row
    from benchmarks.evaluation import evaluate_report

    assert sorted(README_METHODS.values()) == sorted(name for name, _ in evaluate_report.README_ROW)  # each one checked
    for shown, method in README_METHODS.items():
        road = records[method]["road_morf"]
        assert f"{shown} {road['mean']:.3f} ± {road['ci95']:.3f}" in row, method
    probe = records["probe"]
    assert f"({probe['f_calls_per_image']:.0f} f calls, its found set flips f on {probe['flip_rate']['mean']:.0%})" in row
    assert f"distance explainer {records['distance_explainer']['road_morf']['mean']:.3f} ± " \
           f"{records['distance_explainer']['road_morf']['ci95']:.3f} " \
           f"({records['distance_explainer']['f_calls_per_image']:,.0f} calls)" in row
