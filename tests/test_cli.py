import json

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


def test_missing_data_is_one_line_exit_2(tmp_path, capsys):
    code = cli.main(["train", "--tiny", "--out", str(tmp_path / "r"), "--data-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("siamese-xai: error: MNIST")
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
