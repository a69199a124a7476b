"""The command line on a user's own data: an image folder, class names, and `fit` for a user's tower."""

import json

import numpy as np
import pytest
from PIL import Image

from siamese_xai import cli, runs

SIZE = 16
CLASSES = ("bars", "dots", "ring")


def _draw(kind, rng):
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    colour = rng.integers(128, 256, 3)
    if kind == "bars":
        img[:, rng.integers(0, 4)::4] = colour
    elif kind == "dots":
        img[rng.integers(0, 3)::3, rng.integers(0, 3)::3] = colour
    else:
        yy, xx = np.mgrid[:SIZE, :SIZE]
        r = np.hypot(yy - SIZE / 2 + rng.normal(), xx - SIZE / 2 + rng.normal())
        img[(r > 4) & (r < 6.5)] = colour
    return img


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for kind in CLASSES:
        (root / kind).mkdir()
        for i in range(40):
            Image.fromarray(_draw(kind, rng), "RGB").save(root / kind / f"{i:03d}.png")
    Image.fromarray(_draw("ring", rng), "RGB").save(root.parent / "query.png")
    return root


def test_train_and_explain_an_image_folder(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "--tiny", "--data-dir", str(image_folder), "--out", str(run), "--quiet",
                     "--embedding-dim", "6"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["data"]["image_shape"] == [SIZE, SIZE, 3] and metrics["data"]["class_names"] == list(CLASSES)
    assert metrics["data"]["num_train"] + metrics["data"]["num_test"] == 120
    assert runs.load_run(run).class_names == CLASSES

    out = tmp_path / "out"
    assert cli.main(["explain", "--run", str(run), str(image_folder.parent / "query.png"), "--out", str(out),
                     "--n", "32", "--q", "20", "--s", "3", "--quiet"]) == 0
    line = capsys.readouterr().out.strip()
    record = json.loads((out / "query.json").read_text())
    assert record["class_names"] == list(CLASSES)
    predicted = CLASSES[record["predicted_class"][0]]
    assert line.startswith(f"query: SNN class {predicted}, explained class {predicted}")
    assert np.array(record["mask"]).shape == (1, SIZE, SIZE, 3)
    assert (out / "query.png").stat().st_size > 1000
    # the probe paints real images of the folder it was trained on: the first 5 training images of each class
    # (the default), or g(c_l) with --examples-per-class 0; either is recorded
    probe = ["explain", "--run", str(run), str(image_folder.parent / "query.png"), "--out", str(out), "--quiet",
             "--estimator", "probe"]
    assert cli.main(probe) == 0
    record = json.loads((out / "query.json").read_text())
    assert record["proposal_kind"] == ["example"] and record["examples"]["count"] == 5 * len(CLASSES)
    assert record["examples"]["source"]["image_folder"] == str(image_folder.resolve())
    assert cli.main(probe + ["--examples-per-class", "0"]) == 0
    record = json.loads((out / "query.json").read_text())
    assert record["proposal_kind"] == ["prototype"] and record["examples"] == {"per_class": 0, "count": 0}
    assert cli.main(probe[:-2] + ["--examples-per-class", "2"]) == 2  # mc reads no examples: refused by name
    assert "--examples-per-class does not apply to --estimator mc" in capsys.readouterr().err


def _tower():
    import keras

    keras.utils.set_random_seed(5)
    return keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(5)], name="tower")


@pytest.mark.parametrize("kind", ["keras", "savedmodel"])
def test_fit_explains_a_users_tower(image_folder, tmp_path, capsys, kind):
    tower = _tower()
    if kind == "keras":
        path = tmp_path / "tower.keras"
        tower.save(path)
    else:
        path = tmp_path / "tower_savedmodel"
        tower.export(str(path), verbose=False)
    run = tmp_path / "run"
    assert cli.main(["fit", "--embed", str(path), "--data-dir", str(image_folder), "--out", str(run), "--tiny",
                     "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"] == list(CLASSES) and summary["embedding_dim"] == 5
    loaded = runs.load_run(run)
    assert loaded.run_id == summary["run_id"] and loaded.class_names == CLASSES
    x = np.random.default_rng(1).random((2, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded.embed(x)), tower(x).numpy(), rtol=1e-5, atol=1e-6)
    out = tmp_path / "out"
    assert cli.main(["explain", "--run", str(run), str(image_folder.parent / "query.png"), "--out", str(out),
                     "--n", "16", "--q", "10", "--quiet"]) == 0
    assert json.loads((out / "query.json").read_text())["run_id"] == summary["run_id"]


def test_fit_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["fit", "--embed", str(tmp_path / "none.keras"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--embed" in err and "does not exist" in err


def test_explain_split_reads_the_image_folder_it_was_trained_on(image_folder, tmp_path, capsys):
    from siamese_xai.data import datasets
    from siamese_xai.scale import shards

    run = tmp_path / "run"
    assert cli.main(["train", "--tiny", "--data-dir", str(image_folder), "--out", str(run), "--quiet",
                     "--embedding-dim", "6", "--seed", "3"]) == 0
    capsys.readouterr()
    out = tmp_path / "split"
    argv = ["explain-split", "--run", str(run), "--data-dir", str(image_folder), "--split", "test", "--out", str(out),
            "--limit", "7", "--shard-size", "4", "--n", "16", "--q", "10", "--s", "3", "--sigma-scale", "0.5", "--quiet"]
    assert cli.main(argv) == 0
    assert "7 images in 2 shards" in capsys.readouterr().out
    # the test split of training (the run's seed 3), not the seed-0 split nor the training images
    x_test, y_test, _ = datasets.load_dataset(image_folder, split="test", seed=3)
    results = shards.load_split_results(out)
    np.testing.assert_array_equal(results.label, y_test[:7])
    # labels come in class order whatever the seed, so the images are checked through their distances to the
    # prototypes (f and the prototypes only; rtol covers float32 rounding of another batch size)
    from siamese_xai.config import ExplainConfig
    from siamese_xai.explainers.siamese import SiameseExplainer

    explainer = SiameseExplainer.from_run(run, ExplainConfig(n_perturbations=16, q=10, s=3))
    np.testing.assert_allclose(results.distances, explainer.explain(x_test[:7]).distances, rtol=1e-4, atol=1e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["image_folder"] == str(image_folder.resolve()) and manifest["source"]["seed"] == 3
    # and the gallery draws them, read back from the folder (the manifest's SHA-256 checks that they are the same)
    assert cli.main(["report", str(out), "--out", str(tmp_path / "page.html")]) == 0
    assert json.dumps(manifest).count('"sigma_scale": 0.5') == 1
    # the same folder at another size: refused in one line, naming the run's shape
    assert cli.main(argv[:-1] + ["--image-size", "8x8", "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"({SIZE}, {SIZE}, 3)" in err and "--image-size" in err


def test_data_kind_names_what_load_dataset_reads(image_folder, tmp_path):
    from siamese_xai.data import datasets

    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):  # only the names matter here
        (tmp_path / name).touch()
    assert datasets.data_kind() == "mnist" and datasets.data_kind(tmp_path) == "mnist"
    assert datasets.data_kind(image_folder) == "image_folder"
    assert datasets.data_kind(image_folder, "fashion_mnist") == "tfds:fashion_mnist"


def test_sigma_scale_and_export_method_reach_the_explainer(tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    out = tmp_path / "out"
    assert cli.main(["explain", "--run", str(run_dir), "mnist:test:0", "--out", str(out), "--n", "16",
                     "--sigma-scale", "0.25", "--quiet"]) == 0
    record = json.loads((out / "mnist_test_0.json").read_text()) if (out / "mnist_test_0.json").exists() else \
        json.loads(next(out.glob("*.json")).read_text())
    assert record["config"]["sigma_scale"] == 0.25
    assert cli.main(["export", "--run", str(run_dir), "--out", str(tmp_path / "sm"), "--estimator", "linear",
                     "--sigma-scale", "0.5", "--n", "16"]) == 0
    saved = json.loads((tmp_path / "sm" / "assets.extra" / "explainer.json").read_text())
    assert json.dumps(saved).count('"estimator": "linear"') == 1 and json.dumps(saved).count('"sigma_scale": 0.5') == 1
    for bad in ("0", "-1", "nan", "x"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["explain", "--run", "r", "i.png", "--out", "o", "--sigma-scale", bad])
    assert "--sigma-scale" in capsys.readouterr().err
