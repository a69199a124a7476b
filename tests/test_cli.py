import json
import re

import numpy as np

import pytest

from siamese_xai import cli


def test_train_tiny_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--tiny", "--out", str(out), "--quiet", "--seed", "3", "--epochs", "1"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics == json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 3 and config["train_limit"] == 2000
    assert (out / "decoder.keras").is_file()


def test_missing_data_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    from siamese_xai.data import mnist as data

    # The verdict must not depend on whether this machine is online: the download
    # host probe says "unreachable", as it does here and in CI (no real download is tried).
    monkeypatch.setattr(data, "_network_reachable", lambda timeout=3.0: False)
    code = cli.main(["train", "--tiny", "--out", str(tmp_path / "r"), "--data-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("siamese-xai: error: ")
    assert "holds no data set" in err and "MNIST" in err and "--data-dir" in err
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists()  # nothing written


def test_unknown_strategy_exit_2(tmp_path, capsys):
    assert cli.main(["train", "--tiny", "--out", str(tmp_path / "r"), "--strategy", "tpu-pod"]) == 2
    assert "--strategy must be one of default, mirrored, multiworker; received 'tpu-pod'" in capsys.readouterr().err


@pytest.mark.parametrize("flag,value", [("--embedding-dim", "0"), ("--epochs", "-1"), ("--seed", "x")])
def test_bad_numbers_are_usage_errors(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--out", str(tmp_path), flag, value])
    assert info.value.code == 2
    assert "received" in capsys.readouterr().err


def test_explain_mnist_and_png_inputs(tiny_run, tmp_path, capsys):
    from PIL import Image

    from siamese_xai.data import mnist as data

    run_dir, _ = tiny_run
    x, y = data.load_mnist("test")
    Image.fromarray((x[3, ..., 0] * 255).astype("uint8"), "L").convert("RGB").save(tmp_path / "three.png")
    out = tmp_path / "out"
    code = cli.main(
        ["explain", "--run", str(run_dir), "mnist:test:0", str(tmp_path / "three.png"), "--out", str(out),
         "--n", "64", "--q", "30", "--s", "3", "--quiet"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "converted from RGB to grayscale" in captured.err
    for name in ("mnist-test-0", "three"):
        assert (out / f"{name}.png").stat().st_size > 1000
        record = json.loads((out / f"{name}.json").read_text())
        assert record["config"]["n_perturbations"] == 64 and record["config"]["q"] == 30
        assert np.array(record["indices"]).shape == (1, 3)
        mask = np.array(record["mask"])[0, ..., 0]
        assert mask.sum() == 30 and record["mask_pixels_row_col"] == np.argwhere(mask).tolist()
    assert json.loads((out / "mnist-test-0.json").read_text())["true_label"] == int(y[0])


def test_output_names_from_input_file_names_stay_in_out_and_never_collide(tiny_run, tmp_path, capsys):
    """Input file names are data: the outputs stay in --out, one pair of files per input, names kept readable."""
    from PIL import Image

    from siamese_xai.data import mnist as data

    x, _ = data.load_mnist("test")
    names = ["a/seven.png", "b/seven.png", "b/Seven.png", "c/..png", "c/<img src=x onerror=alert(1)> é.png",
             "c/" + "l" * 240 + ".png"]
    for k, name in enumerate(names):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray((x[k, ..., 0] * 255).astype("uint8"), "L").save(tmp_path / name, "PNG")
    out = tmp_path / "out"
    assert cli.main(["explain", "--run", str(tiny_run[0]), *[str(tmp_path / n) for n in names], "--out", str(out),
                     "--n", "16", "--q", "10", "--s", "3", "--quiet"]) == 0, capsys.readouterr().err
    written = sorted(p.name for p in out.iterdir())
    stems = ["seven", "seven-2", "Seven-3", "input", "<img src=x onerror=alert(1)> é", "l" * 100]
    assert written == sorted(f"{s}.{ext}" for s in stems for ext in ("json", "png"))
    for k, stem in enumerate(stems):  # each input's own result
        image = np.array(json.loads((out / f"{stem}.json").read_text())["input"])[0]
        np.testing.assert_allclose(image, (x[k] * 255).astype("uint8") / 255, atol=1e-6)
    assert [p for p in tmp_path.iterdir() if p.suffix == ".json"] == []  # nothing outside --out


def test_explain_target_class_and_pair(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    out = tmp_path / "out"
    assert cli.main(["explain", "--run", str(run_dir), "mnist:test:1", "--target-class", "7", "--n", "32",
                     "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "mnist-test-1.json").read_text())["explained_class"] == [7]
    assert cli.main(["explain", "--run", str(run_dir), "mnist:test:1", "--pair", "mnist:test:2", "--n", "32",
                     "--estimator", "linear", "--out", str(out), "--quiet"]) == 0
    record = json.loads((out / "mnist-test-1__vs__mnist-test-2.json").read_text())
    assert record["explained_class"] == [-1] and record["config"]["estimator"] == "linear"


@pytest.mark.parametrize(
    "argv_tail,needle",
    [
        (["--run", "{missing}", "mnist:test:0"], "no_such_run"),
        (["--run", "{run}", "{bad_image}"], "not an image"),
        (["--run", "{run}", "{big_image}"], "must be 28x28"),
        (["--run", "{run}", "mnist:test:0", "--target-class", "12"], "target_class"),
    ],
)
def test_explain_errors_are_one_line_exit_2(tiny_run, tmp_path, capsys, argv_tail, needle):
    from PIL import Image

    run_dir, _ = tiny_run
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    Image.new("L", (30, 30)).save(tmp_path / "big.png")
    fill = {"missing": str(tmp_path / "no_such_run"), "run": str(run_dir),
            "bad_image": str(tmp_path / "bad.png"), "big_image": str(tmp_path / "big.png")}
    argv = ["explain", "--out", str(tmp_path / "out"), "--n", "16"] + [a.format(**fill) for a in argv_tail]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_help_names_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    listed = set(re.findall(r"^    (\S+)", text, flags=re.M))  # the command list, not its wrapped help lines
    assert {"train", "explain", "explain-split", "export"} <= listed, text
