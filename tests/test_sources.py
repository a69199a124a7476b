"""Where a split's images come from (siamese_xai.data.sources): each description is read back as the source it was."""

import json
import os

import numpy as np
import pytest
from image_files import write_digit_folder, write_tfrecords

from siamese_xai.data import mnist as data
from siamese_xai.data import datasets
from siamese_xai.data import sources

TFDS_DIR = os.environ.get("TFDS_DATA_DIR")


def _round_trip(source):
    """The description as a manifest stores it (JSON text), read back."""
    description = json.loads(json.dumps(source.describe()))
    rebuilt = sources.from_description(description)
    assert type(rebuilt) is type(source) and rebuilt.describe() == description
    for a, b in zip(source.load(), rebuilt.load()):
        np.testing.assert_array_equal(a, b)
    return rebuilt


def test_mnist_round_trips_plain_limited_and_resized():
    for source in (sources.for_data(split="test", limit=30), sources.for_data(split="test", image_size=(14, 14), limit=9)):
        rebuilt = _round_trip(source)
        np.testing.assert_array_equal(rebuilt.read(3, 7)[0], source.load()[0][3:7])
    assert "image_size" not in sources.MnistSource("test", limit=5).describe()  # earlier folders keep theirs
    x, _ = sources.for_data(split="test", image_size=(14, 14), limit=9).load()
    expected, _, _ = datasets.load_dataset(split="test", image_size=(14, 14))
    np.testing.assert_array_equal(x, expected[:9])


@pytest.mark.parametrize("layout", ["one", "train_test"])
def test_image_folders_round_trip_in_both_layouts(tmp_path, layout):
    root = write_digit_folder(tmp_path / "digits", layout)
    for split in ("train", "test"):
        source = sources.for_data(root, split=split, test_fraction=0.5, seed=3, limit=5)
        assert isinstance(source, sources.ImageFolderSource)
        rebuilt = _round_trip(source)
        x, y, _ = datasets.load_dataset(root, split=split, test_fraction=0.5, seed=3)
        np.testing.assert_array_equal(rebuilt.load()[0], x[:5])
        np.testing.assert_array_equal(rebuilt.read(1, 4)[1], y[1:4])


def test_a_tfds_set_round_trips():
    source = sources.for_data(TFDS_DIR, "mnist", "test", limit=20)
    assert isinstance(source, sources.TfdsSource)
    _round_trip(source)
    x, y = data.load_mnist("test")
    np.testing.assert_array_equal(source.load()[0], x[:20])
    np.testing.assert_array_equal(source.read(5, 9)[1], y[5:9])


def test_tfrecords_round_trip(tmp_path):
    files = [write_tfrecords(tmp_path / "a.tfrecord", 5), write_tfrecords(tmp_path / "b.tfrecord", 7, start=5)]
    source = sources.TFRecordSource([str(f) for f in files], (28, 28, 1))
    _round_trip(source)
    np.testing.assert_array_equal(source.load()[0], data.load_mnist("test")[0][:12])


def test_the_earlier_command_line_description_of_a_folder_is_read(tmp_path):
    root = write_digit_folder(tmp_path / "digits")
    old = {"dataset": "image_folder", "data_dir": str(root), "split": "test", "limit": None, "image_size": None,
           "test_fraction": 0.5, "split_seed": 3}
    source = sources.from_description(old)
    assert source.describe() == sources.for_data(root, split="test", test_fraction=0.5, seed=3).describe()
    old_tfds = {"dataset": "tfds:mnist", "data_dir": TFDS_DIR, "split": "test", "limit": 4, "image_size": None,
                "test_fraction": 0.2, "split_seed": 0}
    assert sources.from_description(old_tfds).describe() == sources.for_data(TFDS_DIR, "mnist", limit=4).describe()


def test_a_description_of_no_known_source_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"`source` must describe .* Received: source=\{'array': True\}"):
        sources.from_description({"array": True})
    with pytest.raises(ValueError, match=r"`source` must be a dict .* Received: source=None"):
        sources.from_description(None)
