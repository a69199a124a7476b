import gzip
import shutil
import socket

import numpy as np
import pytest

from siamese_xai import data

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_tfds_train_split_matches_known_mnist():
    x, y = data.load_mnist("train")
    assert x.shape == (60000, 28, 28, 1) and x.dtype == np.float32
    assert y.shape == (60000,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == TRAIN_COUNTS
    assert x.min() == 0.0 and x.max() == 1.0
    assert float(x.mean()) == pytest.approx(0.1307, abs=1e-4)
    assert float(x.std()) == pytest.approx(0.3081, abs=1e-4)
    assert not x.flags.writeable  # cached arrays are shared: nobody may edit them


def test_tfds_test_split_matches_known_mnist():
    x, y = data.load_mnist("test")
    assert x.shape == (10000, 28, 28, 1)
    assert np.bincount(y).tolist() == TEST_COUNTS


def _fingerprint(x, y):
    """Order-free summary: tfds stores MNIST in its own order."""
    keys = np.round(x.reshape(len(x), -1).sum(1), 3) * 100 + y
    return np.sort(keys)


def test_raw_idx_files_give_the_same_images(raw_mnist_dir):
    x_raw, y_raw = data.load_mnist("test", data_dir=raw_mnist_dir)
    x_tfds, y_tfds = data.load_mnist("test")
    assert x_raw.shape == (10000, 28, 28, 1) and x_raw.dtype == np.float32
    assert np.bincount(y_raw).tolist() == TEST_COUNTS
    np.testing.assert_array_equal(_fingerprint(x_raw, y_raw), _fingerprint(x_tfds, y_tfds))


def test_raw_idx_train_counts(raw_mnist_dir):
    x, y = data.load_mnist("train", data_dir=raw_mnist_dir)
    assert np.bincount(y).tolist() == TRAIN_COUNTS
    assert float(x.mean()) == pytest.approx(0.1307, abs=1e-4)


def test_uncompressed_idx_files(raw_mnist_dir, tmp_path):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(raw_mnist_dir / f"{name}.gz", "rb") as src, open(tmp_path / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    x, y = data.load_mnist_idx(tmp_path, "test")
    x_gz, y_gz = data.load_mnist_idx(raw_mnist_dir, "test")
    np.testing.assert_array_equal(x, x_gz)
    np.testing.assert_array_equal(y, y_gz)


def test_truncated_idx_file_is_reported(raw_mnist_dir, tmp_path):
    with gzip.open(raw_mnist_dir / "t10k-labels-idx1-ubyte.gz", "rb") as src:
        (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(src.read()[:500])
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(tmp_path / "t10k-labels-idx1-ubyte")


def test_missing_data_gives_one_clear_error(tmp_path):
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_mnist("test", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert "MNIST 'test' data is missing" in message
    assert "TFDS_DATA_DIR" in message and "--data-dir" in message and "IDX" in message
    assert "\n" not in message


def _online():
    try:
        socket.create_connection(data._DOWNLOAD_HOST, timeout=3).close()
        return True
    except OSError:
        return False


def test_failed_download_gives_the_same_clear_error(tmp_path):
    if _online():
        pytest.skip("this machine can download MNIST; the failure path needs no network")
    with pytest.raises(data.DataNotFoundError, match="the download failed.*TFDS_DATA_DIR.*--data-dir"):
        data.load_mnist("train", data_dir=tmp_path, download=True)


def test_bad_split_is_named():
    with pytest.raises(ValueError, match="split='validation'"):
        data.load_mnist("validation")


def test_pair_sampler_labels_and_balance():
    _, y = data.load_mnist("test")
    i, j, z = data.sample_pairs(y, 5000, seed=3)
    assert z.sum() == 2500  # exactly half dissimilar
    np.testing.assert_array_equal(z[:8], [0, 1, 0, 1, 0, 1, 0, 1])
    assert np.all((y[i] == y[j]) == (z == 0))  # z = 0 same class, 1 different
    assert not np.any(i == j)
    # dissimilar partners come from every other class
    assert len(np.unique(y[j][z == 1])) == 10


def test_pair_sampler_is_seeded():
    _, y = data.load_mnist("test")
    a = data.sample_pairs(y, 1000, seed=1, epoch=0)
    b = data.sample_pairs(y, 1000, seed=1, epoch=0)
    c = data.sample_pairs(y, 1000, seed=1, epoch=1)
    d = data.sample_pairs(y, 1000, seed=2, epoch=0)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], d[0])


def test_pair_dataset_batches():
    x, y = data.load_mnist("test")
    ds = data.make_pair_dataset(x, y, batch_size=64, seed=0, num_pairs=256)
    batches = list(ds)
    assert len(batches) == 4
    x_i, x_j, z = batches[0]
    assert x_i.shape == (64, 28, 28, 1) and x_j.shape == (64, 28, 28, 1) and z.shape == (64,)
    assert float(np.sum(z)) == 32.0
    i, j, zz = data.sample_pairs(y, 256, seed=0)
    np.testing.assert_array_equal(x_i.numpy(), x[i[:64]])
    np.testing.assert_array_equal(x_j.numpy(), x[j[:64]])
    # resuming mid-epoch skips whole batches and yields the same later ones
    resumed = list(data.make_pair_dataset(x, y, batch_size=64, seed=0, num_pairs=256, skip_batches=2))
    assert len(resumed) == 2
    np.testing.assert_array_equal(resumed[0][0].numpy(), batches[2][0].numpy())


def test_image_dataset_is_a_seeded_permutation():
    x = np.arange(10, dtype=np.float32)[:, None]
    order_a = np.concatenate([b[0].numpy()[:, 0] for b in data.make_image_dataset((x,), 4, seed=5)])
    order_b = np.concatenate([b[0].numpy()[:, 0] for b in data.make_image_dataset((x,), 4, seed=5)])
    np.testing.assert_array_equal(order_a, order_b)
    assert sorted(order_a.tolist()) == list(range(10))
