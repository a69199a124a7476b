"""The questions through the one protocol and the command line: verify, rank, and the probe's pair, on a trained run."""

import json

import numpy as np
import pytest

from siamese_xai import cli
from siamese_xai.data import mnist as data
from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.siamese import SiameseExplainer
from siamese_xai.explainers.probe import ProbeExplainer
from siamese_xai.explainers.questions import Pair, Rank, RatherThan, Verify, WhyClass


@pytest.fixture(scope="module")
def mnist():
    x, y = data.load_mnist("test")
    return x[:40], y[:40]


def test_every_estimator_answers_its_questions_and_refuses_the_rest_by_name(tiny_run, mnist):
    x, _ = mnist
    run_dir, _ = tiny_run
    mc = SiameseExplainer.from_run(run_dir, ExplainConfig.tiny())
    path = mc.replace(estimator="template_contrast")
    probe = ProbeExplainer.from_run(run_dir)
    asked = {"class": WhyClass(3), "contrast": RatherThan(), "pair": Pair(x[5]),
             "verify": Verify(x[5], threshold=1.0), "rank": Rank(x[5], x[6])}
    for explainer in (mc, path, probe):
        for kind, question in asked.items():
            if kind in explainer.answers:
                assert len(explainer.explain(x[:2], question)) == 2
            else:
                with pytest.raises(ValueError, match=rf"does not answer {type(question).__name__} questions"):
                    explainer.explain(x[:2], question)
    assert mc.answers == ("class", "pair") and path.answers == ("contrast", "pair")
    assert probe.answers == ("class", "contrast", "pair", "verify", "rank")
    # a question object asks what the keywords ask
    for name in ("mask", "mean_abs_change", "indices"):
        np.testing.assert_array_equal(getattr(mc.explain(x[:3], WhyClass(3)), name),
                                      getattr(mc.explain(x[:3], target_class=3), name))
        np.testing.assert_array_equal(getattr(mc.explain(x[:3], Pair(x[5])), name),
                                      getattr(mc.explain(x[:3], reference=x[5]), name))
    other = [(int(k) + 1) % 10 for k in mc.explain(x[:3]).predicted_class]
    np.testing.assert_array_equal(path.explain(x[:3], RatherThan(contrast=other)).mask,
                                  path.explain(x[:3], contrast_class=other).mask)
    with pytest.raises(ValueError, match="must be None when `question` is given"):
        mc.explain(x[:1], WhyClass(3), target_class=3)


def test_verify_flips_are_f_verdicts(tiny_run, mnist):
    """Each counterfactual's verdict, asked of f again, is the one the result reports."""
    x, y = mnist
    probe = ProbeExplainer.from_run(tiny_run[0])
    first, second = x[:12], x[12:24]
    h1, h2 = probe.embed_images(first), probe.embed_images(second)
    d = np.linalg.norm(h1.astype(np.float64) - h2, axis=1)
    tau = float(np.median(d))  # about half the pairs accepted
    e = probe.explain(first, Verify(second, threshold=tau))
    accepted = d <= tau
    assert 0 < accepted.sum() < len(d)
    d_cf = np.linalg.norm(probe.embed_images(e.counterfactual).astype(np.float64) - h2, axis=1)
    np.testing.assert_array_equal(e.flips, np.where(accepted, d_cf > tau, d_cf <= tau))
    np.testing.assert_allclose(e.margin, np.where(accepted, tau - d, d - tau), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(probe.proposal_kind(_decision(probe, first, second, tau)) == "blur", accepted)


def _decision(probe, first, second, tau):
    from siamese_xai.explainers import questions

    others = {"other": probe.embed_images(second)}
    return questions.resolve(Verify(second, threshold=tau), probe.embed_images(first), probe.prototypes, others)


def test_verify_command_with_a_given_and_a_calibrated_threshold(tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    out = tmp_path / "out"
    assert cli.main(["verify", "mnist:test:0", "mnist:test:1", "--run", str(run_dir), "--out", str(out),
                     "--threshold", "0.5"]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "mnist-test-0__vs__mnist-test-1.json").read_text())
    assert record["threshold"] == 0.5 and record["calibration"] is None
    assert record["verdict"] == ("accept" if record["distance"] <= 0.5 else "reject")
    assert f"d = {record['distance']:.4g}" in printed and len(record["explanations"]) == 2
    assert record["explanations"][0]["question"] == {"kind": "verify", "threshold": 0.5}
    assert (out / "mnist-test-0__vs__mnist-test-1.png").stat().st_size > 1000

    assert cli.main(["verify", "mnist:test:0", "mnist:test:1", "--run", str(run_dir), "--out", str(out),
                     "--calibration-images", "300", "--far", "0.05"]) == 0
    record = json.loads((out / "mnist-test-0__vs__mnist-test-1.json").read_text())
    cal = record["calibration"]
    assert cal["rule"] == "false accept rate <= 0.05" and cal["false_accept_rate"] <= 0.05
    assert cal["images"] == 300 and cal["threshold"] == record["threshold"] > 0
    assert "from false accept rate <= 0.05" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["verify", "a", "b", "--run", str(run_dir), "--out", str(out), "--far", "2"])
    assert "expected a number in [0, 1], received '2'" in capsys.readouterr().err


def test_rank_command_orders_the_gallery_and_gives_each_place_its_reason(tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    out = tmp_path / "out"
    gallery = [f"mnist:test:{i}" for i in range(1, 7)]
    assert cli.main(["rank", "mnist:test:0", *gallery, "--run", str(run_dir), "--out", str(out), "--top", "3"]) == 0
    record = json.loads((out / "mnist-test-0__rank.json").read_text())
    ranking = record["ranking"]
    assert [r["rank"] for r in ranking] == [1, 2, 3]
    distances = [r["distance"] for r in ranking]
    assert distances == sorted(distances)
    probe = ProbeExplainer.from_run(run_dir)
    x, _ = data.load_mnist("test")
    h = probe.embed_images(x[:7]).astype(np.float64)
    d = np.linalg.norm(h[1:] - h[0], axis=1)
    assert [r["item"] for r in ranking] == [gallery[i] for i in np.argsort(d, kind="stable")[:3]]
    for r in ranking:  # each item's reason: why it ranks above the next one
        assert r["reason"]["question"] == {"kind": "rank"} and r["reason"]["margin"] >= 0
    assert "1. mnist:test:" in capsys.readouterr().out and (out / "mnist-test-0__rank.png").is_file()


def test_probe_pair_through_explain(tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    out = tmp_path / "out"
    assert cli.main(["explain", "--run", str(run_dir), "mnist:test:0", "--pair", "mnist:test:1", "--out", str(out),
                     "--estimator", "probe", "--quiet"]) == 0
    record = json.loads((out / "mnist-test-0__vs__mnist-test-1.json").read_text())
    assert record["question"] == {"kind": "pair"} and record["flips"] == [False]
    assert record["final_margin"] == [None]  # not measured: JSON has no NaN
    assert "regions hold some of the distance" in capsys.readouterr().out


def test_the_registry_names_every_estimator_and_its_questions(tiny_run):
    from siamese_xai.explainers.base import ANSWERS, REGISTRY, estimator_classes

    run_dir, _ = tiny_run
    for name in REGISTRY:
        explainer_cls, config_cls = estimator_classes(name)
        config = config_cls() if name == "probe" else (config_cls(estimator=name) if name != "template_contrast"
                                                      else config_cls())
        explainer = explainer_cls.from_run(run_dir, config)
        assert explainer.estimator == name and explainer.answers == ANSWERS[name]
    with pytest.raises(ValueError, match=r"`estimator` must be one of \['mc', 'linear', 'template_contrast', 'probe'\]"):
        estimator_classes("lime")


def test_options_the_probe_does_not_read_are_refused(tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    code = cli.main(["explain", "--run", str(run_dir), "mnist:test:0", "--out", str(tmp_path), "--estimator", "probe",
                     "--q", "30", "--seed", "2"])
    assert code == 2 and "--q, --seed do not apply to --estimator probe" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_the_probe_from_a_run_paints_its_training_images_or_says_why_not(tiny_run, tmp_path, capsys):
    """`explain --estimator probe` holds the first K training images of each class of the run's data (MNIST here)
    and records the proposal it painted; --examples-per-class 0 paints g(c_l); a run whose data is gone says so
    in one line and paints g(c_l), recorded."""
    import shutil

    run_dir, _ = tiny_run
    base = ["explain", "mnist:test:0", "--out", str(tmp_path / "out"), "--estimator", "probe", "--quiet"]
    assert cli.main(base + ["--run", str(run_dir), "--examples-per-class", "3"]) == 0
    record = json.loads((tmp_path / "out" / "mnist-test-0.json").read_text())
    assert record["proposal_kind"] == ["example"] and record["config"]["examples_per_class"] == 3
    assert record["examples"] == {"per_class": 3, "count": 30,
                                  "source": {"dataset": "mnist", "split": "train", "limit": 2000}}
    # the painted image is one of those examples: the first 3 of each class of the training split
    from siamese_xai.data import mnist

    x, y = mnist.load_mnist_slice("train", 0, 200)
    first = np.concatenate([x[y == c][:3] for c in range(10)])
    painted = np.asarray(record["proposal"][0], np.float32)
    assert np.abs(first - painted).reshape(30, -1).max(1).min() < 1e-6
    from siamese_xai.explainers.training_examples import training_examples

    (ex, ey), _ = training_examples(run_dir, 3, (28, 28, 1), 10)
    first = np.sort(np.concatenate([np.flatnonzero(y == c)[:3] for c in range(10)]))
    np.testing.assert_array_equal(ex, x[first])
    np.testing.assert_array_equal(ey, y[first])
    assert cli.main(base + ["--run", str(run_dir), "--examples-per-class", "0"]) == 0
    record = json.loads((tmp_path / "out" / "mnist-test-0.json").read_text())
    assert record["proposal_kind"] == ["prototype"] and record["examples"] == {"per_class": 0, "count": 0}
    # a copy of the run whose data folder is gone
    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    metrics = json.loads((moved / "metrics.json").read_text())
    metrics["data"]["data_dir"] = str(tmp_path / "gone")
    (moved / "metrics.json").write_text(json.dumps(metrics))
    capsys.readouterr()
    assert cli.main(base + ["--run", str(moved)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "siamese-xai: note: the probe holds no examples" in err
    assert "no longer exists" in err and "--examples-per-class 0" in err
    record = json.loads((tmp_path / "out" / "mnist-test-0.json").read_text())
    assert record["proposal_kind"] == ["prototype"] and record["examples"]["count"] == 0
    assert str(tmp_path / "gone") in record["examples"]["missing"]


def test_export_refuses_the_probe_through_its_declared_capability(tiny_run, tmp_path, capsys, monkeypatch):
    """`export` asks the explainer class whether it is `exportable`; no estimator's name decides it."""
    from siamese_xai.explainers.siamese import SiameseExplainer

    run_dir, _ = tiny_run
    assert ProbeExplainer.exportable is False and SiameseExplainer.exportable is True
    assert cli.main(["export", "--run", str(run_dir), "--out", str(tmp_path / "sm"), "--estimator", "probe"]) == 2
    err = capsys.readouterr().err
    assert "--estimator probe is not available for `export`: ProbeExplainer is not exportable" in err
    assert "export takes --estimator mc or linear or template_contrast" in err
    # the same refusal follows the declaration, whichever the estimator
    monkeypatch.setattr(SiameseExplainer, "exportable", False)
    assert cli.main(["export", "--run", str(run_dir), "--out", str(tmp_path / "sm"), "--estimator", "linear"]) == 2
    assert "--estimator linear is not available for `export`: SiameseExplainer is not exportable" in \
        capsys.readouterr().err
    assert not (tmp_path / "sm").exists()


# A value for every estimator option of the command line (what argparse gives), and the config field or
# `explain` keyword each estimator that reads it must receive it as.
OPTION_VALUES = {"s": 3, "q": 30, "n": 64, "sigma_scale": 0.2, "direction": "positive", "seed": 4, "cell": 5,
                 "max_regions": 7, "proposal": "blur", "examples_per_class": 2}


@pytest.mark.parametrize("estimator", ["mc", "linear", "template_contrast", "probe"])
def test_every_option_reaches_the_estimator_or_is_refused_by_name(estimator):
    import argparse

    from siamese_xai.cli import commands
    from siamese_xai.explainers.base import REGISTRY, estimator_classes

    readers = commands.estimator_options()
    assert set(readers) == set(OPTION_VALUES)  # every option the configs declare has a value here
    parser = cli.build_parser()
    explain_options = {a.dest for a in parser._subparsers._group_actions[0].choices["explain"]._actions}
    assert set(readers) <= explain_options  # and the command line takes it
    assert set(REGISTRY) == {"mc", "linear", "template_contrast", "probe"}
    _, config_class = estimator_classes(estimator)
    for option, value in OPTION_VALUES.items():
        args = argparse.Namespace(command="explain", estimator=estimator, **{option: value})
        if option in config_class.CLI_OPTIONS:
            _, config, keywords = commands.estimator_setup(args)
            field = config_class.CLI_OPTIONS[option]
            got = keywords[option] if field is None else getattr(config, field)
            assert got == value and config.estimator == estimator, option
        else:
            with pytest.raises(commands.CLIError) as info:
                commands.estimator_setup(args)
            flag = "--" + option.replace("_", "-")
            assert f"{flag} does not apply to --estimator {estimator}" in str(info.value)
            assert f"{flag} applies to --estimator {commands._listed(readers[option])}" in str(info.value)
    # every option at once: those it reads reach it, the others are all named in one refusal
    args = argparse.Namespace(command="explain", estimator=estimator, **OPTION_VALUES)
    with pytest.raises(commands.CLIError, match=rf"do not apply to --estimator {estimator} "):
        commands.estimator_setup(args)


@pytest.mark.parametrize("estimator", ["mc", "template_contrast", "probe"])
def test_the_question_options_reach_every_estimator_or_are_refused_naming_both(tiny_run, tmp_path, capsys, estimator):
    """--target-class, --contrast-class and --pair become questions; a question the estimator does not answer is
    refused with check_answers's message (the estimator and the question), before anything is written."""
    run_dir, _ = tiny_run
    out = tmp_path / "out"
    base = ["explain", "--run", str(run_dir), "mnist:test:0", "--out", str(out), "--estimator", estimator, "--quiet"]
    small = [] if estimator == "probe" else ["--n", "16", "--q", "10", "--s", "3"]
    assert cli.main(base + small + ["--target-class", "3", "--contrast-class", "5"]) == (2 if estimator == "mc" else 0)
    if estimator == "mc":
        err = capsys.readouterr().err
        assert "--contrast-class needs --estimator template_contrast or probe" in err
        assert "the estimator 'mc' does not answer RatherThan questions" in err
        assert not out.exists() or not list(out.iterdir())
    else:
        record = json.loads((out / "mnist-test-0.json").read_text())
        assert record["explained_class"] == [3] and record["contrast_class"] == [5]
    assert cli.main(base + small + ["--target-class", "3"]) == 0
    record = json.loads((out / "mnist-test-0.json").read_text())
    assert record["explained_class"] == [3] and record["estimator"] == estimator
    assert cli.main(base + small + ["--pair", "mnist:test:1"]) == 0
    record = json.loads((out / "mnist-test-0__vs__mnist-test-1.json").read_text())
    assert (record["explained_class"] == [-1]) == (estimator != "template_contrast")
    assert cli.main(base + small + ["--pair", "mnist:test:1", "--target-class", "3"]) == 2
    assert "--pair asks about the distance to another image" in capsys.readouterr().err
