"""explain-split on Apache Beam (siamese_xai.scale.beam): the same folder as the one-process path, bit for bit."""

import json

import numpy as np
import pytest

pytest.importorskip("apache_beam", reason="the [beam] extra is not installed (pip install -e '.[beam]')")

from siamese_xai.scale import beam
from siamese_xai.data import mnist as data
from siamese_xai.scale import shards
from siamese_xai.data import sources  # noqa: E402
from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.siamese import SiameseExplainer  # noqa: E402


def _folder(path):
    """Every file of an explain-split folder: the manifest as JSON, each shard as its arrays."""
    out = {}
    for f in sorted(path.iterdir()):
        out[f.name] = json.loads(f.read_text()) if f.suffix == ".json" else dict(np.load(f))
    return out


def _assert_same_folder(a, b):
    fa, fb = _folder(a), _folder(b)
    assert sorted(fa) == sorted(fb)
    for name in fa:
        if name.endswith(".json"):
            assert fa[name] == fb[name], name
            continue
        assert sorted(fa[name]) == sorted(fb[name]), name
        for k in fa[name]:
            assert fa[name][k].dtype == fb[name][k].dtype, (name, k)
            np.testing.assert_array_equal(fa[name][k], fb[name][k], err_msg=f"{name}:{k}")


def test_sources_read_the_slices_load_gives(tmp_path):
    import tensorflow as tf

    x, y = data.load_mnist("test")
    mnist = sources.MnistSource("test", limit=50)
    images, labels = mnist.load()
    part = mnist.read(20, 35)  # tfds's split slicing, not the whole split
    np.testing.assert_array_equal(part[0], images[20:35])
    np.testing.assert_array_equal(part[1], labels[20:35])
    assert sources.from_description(mnist.describe()).describe() == mnist.describe()

    # TFRecord: PNG-encoded images and labels in two files, read in order, any slice across them
    files = [tmp_path / "a.tfrecord", tmp_path / "b.tfrecord"]
    for f, (lo, hi) in zip(files, [(0, 12), (12, 30)]):
        with tf.io.TFRecordWriter(str(f)) as writer:
            for i in range(lo, hi):
                png = tf.io.encode_png(tf.constant(np.round(x[i] * 255).astype(np.uint8))).numpy()
                feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                           "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(y[i])]))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    records = sources.TFRecordSource(str(tmp_path / "*.tfrecord"), (28, 28, 1))
    got_x, got_y = records.load()
    np.testing.assert_array_equal(got_x, x[:30])  # MNIST's pixels are k / 255: PNG round-trips them exactly
    np.testing.assert_array_equal(got_y, y[:30])
    np.testing.assert_array_equal(records.read(8, 20)[0], x[8:20])
    rebuilt = sources.from_description(records.describe())
    np.testing.assert_array_equal(rebuilt.read(10, 14)[1], y[10:14])
    # an image folder: DIR/<class>/<image>, the seeded stratified test share
    from PIL import Image

    for k, name in enumerate(["circle", "triangle"]):
        (tmp_path / "folder" / name).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.round(x[10 * k + i, ..., 0] * 255).astype(np.uint8)).save(tmp_path / "folder" / name / f"{i}.png")
    folder = sources.ImageFolderSource(tmp_path / "folder", "train", test_fraction=0.4)
    fx, fy = folder.load()
    assert fx.shape == (6, 28, 28, 1) and sorted(fy.tolist()) == [0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(folder.read(2, 5)[0], fx[2:5])
    np.testing.assert_array_equal(sources.from_description(folder.describe()).read(1, 4)[1], fy[1:4])

    with pytest.raises(FileNotFoundError, match="matches no TFRecord file"):
        sources.TFRecordSource(str(tmp_path / "none-*.tfrecord"), (28, 28, 1)).load()
    with pytest.raises(ValueError, match="`source` must describe MNIST"):
        sources.from_description({"array": True})


@pytest.mark.slow
def test_direct_runner_with_two_worker_processes_writes_the_one_process_folder(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    explainer = SiameseExplainer.from_run(run_dir, ExplainConfig(n_perturbations=300))
    source = sources.MnistSource("test", limit=70)
    x, y = source.load()
    settings = dict(shard_size=20, batch_size=8, seed=5, verbose=0)
    shards.explain_split(explainer, x, tmp_path / "local", labels=y, source=source.describe(), **settings)

    options = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    result = beam.explain_split_beam(run_dir, explainer, source, tmp_path / "beam", beam_options=options, **settings)
    assert (result["num_shards"], result["shards_written"], result["shards_kept"]) == (4, 4, 0)
    writers = result["worker_processes"]
    assert sum(writers.values()) == 70 and len(writers) == 2, writers  # two worker processes shared the images
    # the same bytes in every array (the last shard and the last batch of each shard are short)
    _assert_same_folder(tmp_path / "local", tmp_path / "beam")
    assert len(shards.load_split_results(tmp_path / "beam").index) == 70

    # the folder's rules hold across the two paths: a finished folder is kept, other settings are refused
    again = beam.explain_split_beam(run_dir, explainer, source, tmp_path / "beam", beam_options=options, **settings)
    assert (again["shards_written"], again["shards_kept"]) == (0, 4)
    with pytest.raises(ValueError, match=r"other settings \(seed: 5 there, 6 now\)"):
        beam.explain_split_beam(run_dir, explainer, source, tmp_path / "beam", beam_options=options,
                                **{**settings, "seed": 6})


def test_a_folder_split_made_on_beam_has_a_report(tiny_run, tmp_path):
    """explain-split --runner beam on a one-folder image set, then report: the page reads the folder back."""
    from image_files import write_digit_folder

    from siamese_xai import cli
    from siamese_xai.scale import gallery as report

    folder = write_digit_folder(tmp_path / "digits", per_class=3)
    split = tmp_path / "split"
    assert cli.main(["explain-split", "--run", str(tiny_run[0]), "--data-dir", str(folder), "--test-fraction", "0.5",
                     "--split", "test", "--out", str(split), "--shard-size", "2", "--n", "16", "--q", "10", "--s", "3",
                     "--quiet", "--runner", "beam", "--beam-option=--direct_running_mode=in_memory"]) == 0
    manifest = json.loads((split / "manifest.json").read_text())
    assert manifest["source"] == sources.for_data(folder, split="test", test_fraction=0.5,
                                                  seed=manifest["source"]["seed"]).describe()
    page = report.write_report(split)
    assert page.read_text().count('<script type="application/json" id="data">') == 1
    assert len(shards.load_split_results(split).index) == 6


def test_the_probe_on_beam_writes_the_one_process_folder(tiny_run, tmp_path):
    """explain-split --estimator probe on Beam: the workers build the probe from the manifest's config."""
    from siamese_xai.config import ProbeConfig
    from siamese_xai.explainers.probe import ProbeExplainer

    run_dir, _ = tiny_run
    probe = ProbeExplainer.from_run(run_dir, ProbeConfig(max_regions=10, proposal="shift"))
    source = sources.MnistSource("test", limit=10)
    x, y = source.load()
    settings = dict(shard_size=4, batch_size=3, verbose=0)
    shards.explain_split(probe, x, tmp_path / "local", labels=y, source=source.describe(), **settings)
    result = beam.explain_split_beam(run_dir, probe, source, tmp_path / "beam",
                                     beam_options=["--direct_running_mode=in_memory"], **settings)
    assert (result["num_shards"], result["shards_written"]) == (3, 3)
    _assert_same_folder(tmp_path / "local", tmp_path / "beam")
    assert shards.load_split_results(tmp_path / "beam").estimator == "probe"


def test_a_list_of_pairs_on_beam_writes_the_one_process_folder(tiny_run, tmp_path):
    """PairListSource on Beam: the workers read their rows of the CSV and ask Pair, as the one-process path does."""
    from test_shards import _pair_list

    run_dir, _ = tiny_run
    csv, _ = _pair_list(tmp_path, [("d0.png", "d1.png"), ("d2.png", "d3.png"), ("d4.png", "d5.png")])
    explainer = SiameseExplainer.from_run(run_dir, ExplainConfig.tiny())
    source = sources.PairListSource(csv, explainer.image_shape)
    x, _ = source.load()
    settings = dict(shard_size=2, batch_size=2, verbose=0)
    shards.explain_split(explainer, x, tmp_path / "local", source=source.describe(), pairs=True, **settings)
    result = beam.explain_split_beam(run_dir, explainer, source, tmp_path / "beam",
                                     beam_options=["--direct_running_mode=in_memory"], **settings)
    assert (result["num_shards"], result["shards_written"]) == (2, 2)
    _assert_same_folder(tmp_path / "local", tmp_path / "beam")
