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
    assert len(blocks) == 3
    assert blocks.index(block("explainer.explain(")) < blocks.index(block("probe.explain(")), "the probe block reuses x_test"
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


def test_explaining_example_runs_as_written(project_folder, capsys):
    namespace = {}
    exec(compile(block("explainer.explain("), "README.md (Explaining)", "exec"), namespace)
    e, same = namespace["e"], namespace["same"]
    assert len(e) == 8 and len(namespace["first"]) == 1 and len(namespace["pair"]) == 8
    assert (namespace["pair"].explained_class == -1).all() and int(namespace["why_4"].explained_class[0]) == 4
    contrast = namespace["why_4_not_9"]
    assert (int(contrast.explained_class[0]), int(contrast.contrast_class[0])) == (4, 9) and contrast.sigma is None
    assert (same.mask == e.mask).all() and os.path.isfile("explanations.npz")
    assert capsys.readouterr().out.startswith("Explanation(B=8, estimator='mc'")


def test_probe_example_runs_as_written(project_folder):
    from siamese_xai import load_mnist

    namespace = {"x_test": load_mnist("test")[0]}
    exec(compile(block("probe.explain("), "README.md (ProbeExplainer)", "exec"), namespace)
    p = namespace["p"]
    assert len(p) == 8 and p.ranking.shape == (8, 28, 28, 1) and p.mask.shape == (8, 28, 28, 1)
    assert (p.n_calls > 0).all() and p.flips.dtype == bool


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


README_METHODS = {"`probe`": "probe", "distance explainer": "distance_explainer", "input intensity": "intensity",
                  "occlusion by the margin": "occlusion_margin", "KernelSHAP by the margin": "kernelshap_margin",
                  "; occlusion": "occlusion", "`mc`": "mc", "; KernelSHAP": "kernelshap"}


def test_faithfulness_row_quotes_the_committed_results():
    """The README's faithfulness row is benchmarks/results.json's MNIST ROAD (most relevant first) as written."""
    import json

    results = json.loads((README.parent / "benchmarks" / "results.json").read_text())
    row = next(line for line in README.read_text().splitlines() if line.startswith("| faithfulness on "))
    records = {r["method"]: r for r in results["records"] if r["dataset"] == "mnist"}
    n = results["datasets"]["mnist"]["n_images"]
    assert row.startswith(f"| faithfulness on {n:,} MNIST test images (ROAD, most relevant first")
    assert f"`benchmarks/results.json` ({results['mode']} mode)" in row
    for shown, method in README_METHODS.items():
        road = records[method]["road_morf"]
        assert f"{shown} {road['mean']:.3f} ± {road['ci95']:.3f}" in row, method
    probe = records["probe"]
    assert f"({probe['f_calls_per_image']:.0f} f calls, its found set flips f on {probe['flip_rate']['mean']:.0%})" in row
    assert f"distance explainer {records['distance_explainer']['road_morf']['mean']:.3f} ± " \
           f"{records['distance_explainer']['road_morf']['ci95']:.3f} " \
           f"({records['distance_explainer']['f_calls_per_image']:,.0f} calls)" in row
