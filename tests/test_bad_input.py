"""Bad input, everywhere a user can give it: the CLI and the Python API.

Every case must fail with one clear line (exit code 2 on the command line)
that names what was wrong, and leave no output file behind.
"""

import shutil

import numpy as np
import pytest
from PIL import Image

from siamese_xai import cli, files
from siamese_xai.data import mnist as data
from siamese_xai.training import models
from siamese_xai.scale import shards
from siamese_xai.training import stages as training
from siamese_xai import runs as run_files
from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.siamese import SiameseExplainer


@pytest.fixture(scope="module")
def runs(tiny_run, tmp_path_factory):
    """Run folders, good and broken, built once from the tiny run."""
    good = tiny_run[0]
    root = tmp_path_factory.mktemp("bad_runs")
    made = {"good": good, "missing": root / "no_such_run", "empty": root / "empty"}
    made["empty"].mkdir()
    for kind in ("corrupt", "truncated", "mismatched"):
        made[kind] = root / kind
        made[kind].mkdir()
        for name in (run_files.SNN_FILE, run_files.DECODER_FILE, run_files.PROTOTYPES_FILE):
            shutil.copy(good / name, made[kind] / name)
    (made["corrupt"] / run_files.SNN_FILE).write_bytes(b"this is not a keras file\n" * 100)
    whole = (good / run_files.DECODER_FILE).read_bytes()
    (made["truncated"] / run_files.DECODER_FILE).write_bytes(whole[: len(whole) // 2])
    files.save_model(models.build_decoder(10), made["mismatched"] / run_files.DECODER_FILE)  # D = 10 against f's 20

    images = root / "images"
    images.mkdir()
    x, _ = data.load_mnist("test")
    (images / "notes.png").write_text("not an image at all")
    Image.new("L", (32, 32)).save(images / "big.png")
    Image.fromarray((x[0, ..., 0] * 255).astype("uint8"), "L").convert("RGB").save(images / "rgb.png")
    made["images"] = images
    a_file = root / "a_file"
    a_file.write_text("a regular file")
    made["unwritable"] = a_file / "out"  # under a file: cannot be created, even as root
    return made


def _main(argv):
    try:
        return cli.main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        return exit_.code


# (argv with {placeholders}, a phrase the error must contain)
CLI_CASES = {
    "missing run": (["explain", "--run", "{missing}", "mnist:test:0"], "no_such_run"),
    "empty run": (["explain", "--run", "{empty}", "mnist:test:0"], "has no 'snn.keras'"),
    "corrupted .keras": (["explain", "--run", "{corrupt}", "mnist:test:0"], "Could not read 'snn.keras'"),
    "truncated .keras": (["explain", "--run", "{truncated}", "mnist:test:0"], "Could not read 'decoder.keras'"),
    "decoder of another length": (["explain", "--run", "{mismatched}", "mnist:test:0"], "codes of length D=20"),
    "not an image": (["explain", "--run", "{good}", "{images}/notes.png"], "not an image"),
    "wrong size": (["explain", "--run", "{good}", "{images}/big.png"], "must be 28x28 pixels"),
    "missing image": (["explain", "--run", "{good}", "{images}/none.png"], "does not exist"),
    "negative s": (["explain", "--run", "{good}", "mnist:test:0", "--s", "-1"], "--s: expected a positive integer, received '-1'"),
    "negative q": (["explain", "--run", "{good}", "mnist:test:0", "--q", "-5"], "--q: expected a positive integer, received '-5'"),
    "negative N": (["explain", "--run", "{good}", "mnist:test:0", "--n", "-2"], "--n: expected a positive integer, received '-2'"),
    "s above D": (["explain", "--run", "{good}", "mnist:test:0", "--s", "21"], "`s` must be at most the embedding length D=20"),
    "out under a file": (["explain", "--run", "{good}", "mnist:test:0", "--out", "{unwritable}"], "cannot be created"),
    "split: missing run": (["explain-split", "--run", "{missing}", "--limit", "4"], "no_such_run"),
    "split: corrupted .keras": (["explain-split", "--run", "{corrupt}", "--limit", "4"], "Could not read 'snn.keras'"),
    "split: negative N": (["explain-split", "--run", "{good}", "--n", "-1"], "--n: expected a positive integer"),
    "split: out under a file": (["explain-split", "--run", "{good}", "--limit", "4", "--out", "{unwritable}"], "cannot be created"),
    "export: truncated .keras": (["export", "--run", "{truncated}"], "Could not read 'decoder.keras'"),
    "train: unknown strategy": (["train", "--tiny", "--strategy", "tpu-pod"], "--strategy must be one of default, mirrored, multiworker"),
    "train: out under a file": (["train", "--tiny", "--out", "{unwritable}", "--quiet"], "cannot be created"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(runs, tmp_path, capsys, case):
    argv, phrase = CLI_CASES[case]
    fill = {k: str(v) for k, v in runs.items()}
    argv = [a.format(**fill) for a in argv]
    out = tmp_path / "out"
    if "--out" not in argv:
        argv += ["--out", str(out)]
    code = _main(argv + (["--quiet"] if argv[0] in ("explain", "explain-split") else []))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err and phrase in err, err
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
    assert not runs["unwritable"].exists()


def test_rgb_image_is_accepted_with_a_one_line_note(runs, tmp_path, capsys):
    """RGB is converted to grayscale with a note, not refused (the CLI spec of `explain`)."""
    code = _main(["explain", "--run", str(runs["good"]), str(runs["images"] / "rgb.png"), "--n", "16",
                  "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0 and err.count("\n") == 1 and "converted from RGB to grayscale" in err


def _explainer(runs):
    return SiameseExplainer.from_run(runs["good"], ExplainConfig.tiny())


def _nan_image():
    x = np.array(data.load_mnist("test")[0][:3])
    x[1, 3, 4, 0] = np.nan
    return x


def _inf_image():
    x = np.array(data.load_mnist("test")[0][0])
    x[0, 0, 0] = np.inf
    return x


# (a call of the Python API, the exception, a regex its message must match)
API_CASES = {
    "missing run": (lambda r, t: SiameseExplainer.from_run(r["missing"]), FileNotFoundError, "not a folder"),
    "empty run": (lambda r, t: SiameseExplainer.from_run(r["empty"]), FileNotFoundError, "has no 'snn.keras'"),
    "corrupted .keras": (lambda r, t: SiameseExplainer.from_run(r["corrupt"]), ValueError, "Could not read 'snn.keras'"),
    "truncated .keras": (lambda r, t: SiameseExplainer.from_run(r["truncated"]), ValueError, "Could not read 'decoder.keras'"),
    "decoder of another length": (lambda r, t: SiameseExplainer.from_run(r["mismatched"]), ValueError, "codes of length D=20"),
    "NaN pixels": (lambda r, t: _explainer(r).explain(_nan_image()), ValueError, r"`x` must be finite.*\(1, 3, 4, 0\)"),
    "inf pixels": (lambda r, t: _explainer(r).explain(_inf_image()), ValueError, "`x` must be finite"),
    "NaN pixels, split": (lambda r, t: shards.explain_split(_explainer(r), _nan_image(), t), ValueError, "`images` must be finite"),
    "negative s": (lambda r, t: ExplainConfig(s=-1), ValueError, "Received: s=-1"),
    "negative q": (lambda r, t: ExplainConfig(q=-3), ValueError, "Received: q=-3"),
    "negative N": (lambda r, t: ExplainConfig(n_perturbations=-10), ValueError, "Received: n_perturbations=-10"),
    "unknown strategy": (lambda r, t: training.train_run(None, t, strategy="tpu-pod"), ValueError, "Received: strategy='tpu-pod'"),
    "split: out under a file": (lambda r, t: shards.explain_split(_explainer(r), np.zeros((2, 28, 28, 1), np.float32), r["unwritable"]),
                                OSError, "cannot be created"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_bad_input_raises_a_clear_error_and_writes_nothing(runs, tmp_path, case):
    call, error, pattern = API_CASES[case]
    out = tmp_path / "out"
    with pytest.raises(error, match=pattern) as info:
        call(runs, out)
    assert "\n" not in str(info.value)
    assert not out.exists() or not any(out.rglob("*"))
