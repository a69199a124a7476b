"""Photo-sized images: the photo generator, the photo networks, the size-based defaults, and the did-not-learn lines."""


import numpy as np
import pytest
from PIL import Image

from siamese_xai import cli, files
from siamese_xai.data import mnist as data
from siamese_xai.training import defaults
from siamese_xai.training import models
from siamese_xai.evaluation import synthetic
from siamese_xai.training import stages as training
from siamese_xai.config import TrainConfig


def _shapes(model):
    return [(layer.name, tuple(layer.output.shape[1:])) for layer in model.layers]


def test_photo_generator_is_seeded_and_its_masks_hold_the_object():
    x, y, masks = synthetic.make_photos(10, size=48, seed=3)
    x2, y2, _ = synthetic.make_photos(10, size=48, seed=3)
    assert x.shape == (10, 48, 48, 3) and x.dtype == np.float32 and masks.shape == (10, 48, 48)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    image, mask = synthetic.photo_image(int(y[4]), 48, np.random.default_rng([3, 4]))
    np.testing.assert_array_equal(x[4] * 255, image)
    np.testing.assert_array_equal(masks[4], mask)
    assert sorted(np.bincount(y, minlength=5)) == [2, 2, 2, 2, 2]
    np.testing.assert_array_equal(np.round(x * 255) / 255, x)  # what a PNG file holds
    assert all(0.02 < m.mean() < 0.25 for m in masks)
    # the object is one flat colour (plus noise) that differs from the background around it
    for image, mask in zip(x, masks):
        assert np.abs(image[mask].mean(0) - image[~mask].mean(0)).mean() > 0.1


def test_photo_rule_levels_and_filters():
    assert models.photo_levels((96, 96, 3)) == [(96, 96), (48, 48), (24, 24), (12, 12), (6, 6)]
    assert len(models.photo_levels((224, 224, 3))) - 1 == 5 and models.photo_levels((224, 224, 3))[-1] == (7, 7)
    assert len(models.photo_levels((48, 48, 3))) - 1 == 3
    assert [models.photo_filters(level) for level in range(1, 7)] == [8, 16, 32, 64, 64, 64]
    assert [models.tower_filters(level) for level in range(1, 7)] == [16, 32, 64, 128, 128, 128]
    assert [models.tower_pooling((s, s, 3)) for s in (48, 64, 95, 96, 224)] == [1, 1, 1, 2, 4]
    assert not models.uses_photo_networks((47, 200, 3)) and models.uses_photo_networks((48, 48, 1))
    # the paper's images keep Table 1's builders
    assert models.build_for_images((28, 28, 1)) == (models.build_siamese_subnetwork, models.build_encoder,
                                                    models.build_decoder)


def test_photo_tower_shapes_and_parameter_count_by_hand():
    tower = models.build_photo_tower(20, image_shape=(64, 64, 3))
    shapes = dict(_shapes(tower))
    assert "downsample" not in shapes and shapes["image_norm"] == (64, 64, 3)
    assert dict(_shapes(models.build_photo_tower(20, image_shape=(96, 96, 3))))["downsample"] == (48, 48, 3)
    assert [shapes[f"relu{k}"] for k in (1, 2, 3)] == [(32, 32, 16), (16, 16, 32), (8, 8, 64)]
    assert shapes["pool"] == (128,) and shapes["embedding_norm"] == (20,)
    # convs without bias 3*9*16, 16*9*32, 32*9*64, 64*9*64; four numbers per batch-norm channel;
    # dense 128*128+128, 128*20+20; the embedding's running mean and variance 2*20
    assert tower.count_params() == (432 + 4608 + 18432 + 36864 + 4 * (16 + 32 + 64 + 64)
                                    + 16512 + 2580 + 40)


def test_photo_autoencoder_shapes_and_parameter_counts_by_hand():
    enc = models.build_photo_encoder(20, image_shape=(64, 64, 3))
    dec = models.build_photo_decoder(20, image_shape=(64, 64, 3))
    assert _shapes(enc) == [("image", (64, 64, 3)), ("conv1", (32, 32, 8)), ("conv2", (16, 16, 16)),
                            ("conv3", (8, 8, 32)), ("flatten", (2048,)), ("dense1", (128,)), ("dense2", (20,))]
    # conv 3*9*8+8, 8*9*16+16, 16*9*32+32; dense 2048*128+128, 128*20+20
    assert enc.count_params() == 224 + 1168 + 4640 + 262272 + 2580
    assert _shapes(dec) == [("code", (20,)), ("dense1", (128,)), ("dense2", (2048,)), ("reshape", (8, 8, 32)),
                            ("upsampling1", (16, 16, 32)), ("conv1", (16, 16, 16)), ("upsampling2", (32, 32, 16)),
                            ("conv2", (32, 32, 8)), ("upsampling3", (64, 64, 8)), ("conv3", (64, 64, 3))]
    # dense 20*128+128, 128*2048+2048; conv 32*9*16+16, 16*9*8+8, 8*9*3+3
    assert dec.count_params() == 2688 + 264192 + 4624 + 1160 + 219
    # odd sides come back exactly: 100x120 -> 50x60, 25x30, 13x15, 7x8
    assert models.build_photo_decoder(20, image_shape=(100, 120, 3)).output_shape == (None, 100, 120, 3)
    assert models.build_autoencoder(enc, dec)(np.zeros((2, 64, 64, 3), np.float32))[0].shape == (2, 64, 64, 3)


def test_defaults_by_image_size_and_count():
    paper = TrainConfig.paper()
    same, line = defaults.for_images(paper, (28, 28, 1), 60000)
    assert same == paper and line.startswith("28x28x1 images, 60000 training images: the paper's networks")
    photo, line = defaults.for_images(paper.replace(seed=4), (96, 96, 3), 3000)
    assert photo.seed == 4 and photo.embedding_dim == paper.embedding_dim
    assert (photo.snn.batch_size, photo.snn.learning_rate) == (defaults.PHOTO_SNN_BATCH, defaults.PHOTO_SNN_LR)
    steps = -(-3000 // defaults.PHOTO_SNN_BATCH)
    assert photo.snn.epochs == -(-defaults.PHOTO_SNN_STEPS // steps)
    assert photo.autoencoder.epochs * -(-3000 // defaults.PHOTO_AE_BATCH) >= defaults.PHOTO_AE_STEPS
    assert line.startswith("96x96x3 images, 3000 training images: photo networks (4 levels")
    assert photo.snn.tau == 2 * paper.embedding_dim
    assert f"{photo.snn.epochs} epochs" in line


def test_batch_contrastive_loss_by_hand():
    import tensorflow as tf

    from siamese_xai.training import losses

    h = tf.constant([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    y = tf.constant([0, 0, 1])
    # d^2: (0,1) = 1, (0,2) = 4, (1,2) = 5; tau = 4.5: hinge max(0, 4.5 - d^2) = 0.5 and 0
    got = losses.batch_contrastive_loss(h, y, tau=4.5).numpy()
    np.testing.assert_allclose(got, [0.5 * 1 + 0.5 * 0.5, 0.5 * 1 + 0.5 * 0.0, (0.5 + 0.0) / 2])


def test_mirrored_batches_are_seeded_and_mirror_left_right():
    x = np.random.default_rng(0).random((8, 4, 5, 3)).astype(np.float32)
    y = np.array([0, 1] * 4)
    plain = list(data.make_labelled_dataset(x, y, 8, seed=1))[0]
    both = [list(data.make_labelled_dataset(x, y, 8, seed=1, augment=True))[0] for _ in range(2)]
    np.testing.assert_array_equal(both[0][0], both[1][0])
    flipped = ~np.all(both[0][0].numpy() == plain[0].numpy(), axis=(1, 2, 3))
    assert 0 < flipped.sum() < 8
    np.testing.assert_array_equal(both[0][0].numpy()[flipped], plain[0].numpy()[flipped][:, :, ::-1])


GOOD = {"prototype_accuracy": 0.97, "embedding_within_class_sq_spread": 0.1, "embedding_between_class_sq_distance": 2.0,
        "recon_sse_decoder": 100.0, "recon_sse_class_mean_image": 400.0}


@pytest.mark.parametrize("changes, unusable, words", [
    ({}, None, None),
    ({"prototype_accuracy": 0.23}, True, "did not learn: nearest-prototype test accuracy 23.0% against chance 20.0%"),
    ({"embedding_between_class_sq_distance": 0.0003, "embedding_within_class_sq_spread": 0.016}, True,
     "does not separate the classes: its prototypes lie 0.0003 apart"),
    ({"recon_sse_decoder": 3353.0, "recon_sse_class_mean_image": 1539.0}, False,
     "the decoder draws no better than the class means: squared error of g(f(x)) 3353 against 1539"),
])
def test_diagnose_names_what_did_not_work(changes, unusable, words):
    found = training.diagnose({**GOOD, **changes}, num_classes=5)
    if unusable is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0][0] is unusable and words in found[0][1]
        assert "try " in found[0][1]


@pytest.fixture(scope="module")
def random_label_photos(tmp_path_factory):
    """48x48 photos whose labels are drawn at random: no network can learn them."""
    root = tmp_path_factory.mktemp("random_labels")
    x, _, _ = synthetic.make_photos(250, size=48, seed=0)
    labels = np.random.default_rng(1).integers(0, 5, len(x))
    for i, (image, k) in enumerate(zip(x, labels)):
        folder = root / synthetic.PHOTO_CLASSES[k]
        folder.mkdir(exist_ok=True)
        Image.fromarray((image * 255).round().astype(np.uint8), "RGB").save(folder / f"{i:04d}.png")
    return root


def test_train_says_when_the_network_did_not_learn(random_label_photos, tmp_path, capsys):
    code = cli.main(["train", "--tiny", "--epochs", "1", "--data-dir", str(random_label_photos),
                     "--out", str(tmp_path / "run"), "--test-fraction", "0.4", "--quiet"])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert code == cli.EXIT_NOT_USABLE, err
    assert last.startswith(f"siamese-xai: the run in {tmp_path / 'run'} is not usable: the Siamese network ")
    assert "try more steps" in last and ".py:" not in err  # a sentence, no warning with a source path
    assert (tmp_path / "run" / "metrics.json").exists()  # the run is written all the same


# --- streaming: photo-size image folders read on the fly (siamese_xai.data.streaming) ---

def _streamed(folder, **kwargs):
    from siamese_xai.data import streaming

    return streaming.load_images(folder, split="train", test_fraction=0.4, **kwargs)


@pytest.mark.parametrize("cache_bytes", [None, 0], ids=["uint8 cache", "files"])
def test_streamed_batches_are_the_in_memory_batches(random_label_photos, cache_bytes):
    from siamese_xai.data import datasets, streaming

    images, y, names = _streamed(random_label_photos, **({} if cache_bytes is None else {"cache_bytes": 0}))
    x, y_mem, names_mem = datasets.load_dataset(random_label_photos, split="train", test_fraction=0.4)
    assert isinstance(images, streaming.FolderImages) and (images.cache is None) == (cache_bytes == 0)
    n = len(x)
    assert images.shape == x.shape == (n, 48, 48, 3) and n > 128 and names == names_mem
    np.testing.assert_array_equal(y, y_mem)
    streamed = list(streaming.labelled_dataset(images, y, 32, seed=3, epoch=1, skip_batches=1, augment=True))
    in_memory = list(data.make_labelled_dataset(x, y, 32, seed=3, epoch=1, skip_batches=1, augment=True))
    assert len(streamed) == len(in_memory) == 4  # 5 batches, the first skipped (a resumed epoch)
    for (xs, ys), (xm, ym) in zip(streamed, in_memory):
        assert xs.dtype == tf_float32() and ys.dtype == tf_int64() and xs.shape[1:] == (48, 48, 3)
        np.testing.assert_array_equal(xs, xm)
        np.testing.assert_array_equal(ys, ym)
    h = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    for (xs, hs), (xm, hm) in zip(streaming.image_dataset((images, h), 64, 5, 2), data.make_image_dataset((x, h), 64, 5, 2)):
        assert xs.shape[1:] == (48, 48, 3) and hs.shape[1:] == (2,)
        np.testing.assert_array_equal(xs, xm)
        np.testing.assert_array_equal(hs, hm)
    np.testing.assert_array_equal(np.asarray(images[10:13]), x[10:13])
    np.testing.assert_array_equal(streaming.embed(lambda b: b.reshape(len(b), -1)[:, :4], images, 64), x.reshape(n, -1)[:, :4])


def test_probe_examples_of_a_photo_folder_decode_only_the_kept_images(random_label_photos, tmp_path, monkeypatch):
    """A run on a streamed folder holds the first K training images of each class, as the in-memory split gives them."""
    from siamese_xai import files
    from siamese_xai.data import datasets, streaming
    from siamese_xai.explainers.training_examples import training_examples

    run = tmp_path / "run"
    run.mkdir()
    files.write_json(run / "metrics.json", {"data": {"data_dir": str(random_label_photos), "dataset": None,
                                                     "test_fraction": 0.4, "image_shape": [48, 48, 3]}})
    files.write_json(run / "config.json", {"seed": 0, "train_limit": 120})
    read = []
    original = streaming.FolderImages.read
    monkeypatch.setattr(streaming.FolderImages, "read", lambda self, a, b: read.append(b - a) or original(self, a, b))
    (x, y), record = training_examples(run, 2, (48, 48, 3), 5)
    x_all, y_all, _ = datasets.load_dataset(random_label_photos, split="train", test_fraction=0.4)
    keep = np.sort(np.concatenate([np.flatnonzero(y_all[:120] == c)[:2] for c in range(5)]))
    assert record["count"] == len(keep) == 10 and sum(read) == 10  # ten images decoded, not the split
    np.testing.assert_array_equal(y, y_all[keep])
    np.testing.assert_array_equal(x, x_all[keep])


def tf_float32():
    import tensorflow as tf

    return tf.float32


def tf_int64():
    import tensorflow as tf

    return tf.int64


def test_streamed_pairs_are_similar_exactly_when_the_files_share_a_class_folder(random_label_photos):
    from siamese_xai.data import datasets, streaming

    images, y, names = _streamed(random_label_photos)
    x, _, _ = datasets.load_dataset(random_label_photos, split="train", test_fraction=0.4)
    folder_of = [names.index(p.split("/")[-2]) for p in images.paths]  # the class each file's folder names
    xb, yb = next(iter(streaming.labelled_dataset(images, y, 32, seed=7, augment=True)))
    found = []
    for image, label in zip(xb.numpy(), yb.numpy()):  # each streamed image is one file's image, maybe mirrored
        match = [i for i in range(len(x)) if np.array_equal(x[i], image) or np.array_equal(x[i][:, ::-1], image)]
        assert len(match) == 1 and folder_of[match[0]] == label
        found.append(folder_of[match[0]])
    # the contrastive stage's pairs: every pair of the batch, similar (z = 0) where the labels agree
    z = (yb.numpy()[:, None] != yb.numpy()[None, :]).astype(int)
    np.testing.assert_array_equal(z, (np.array(found)[:, None] != np.array(found)[None, :]).astype(int))
    assert 0 < z.sum() < z.size - len(z)  # both kinds of pair occur


def test_streaming_starts_at_the_photo_size_and_keeps_small_folders_in_memory(tmp_path):
    from image_files import write_digit_folder
    from siamese_xai.data import streaming

    assert streaming.STREAM_MIN_SIDE == models.PHOTO_MIN_SIDE
    assert streaming.streams((48, 64, 3)) and not streaming.streams((47, 96, 3)) and not streaming.streams((28, 28, 1))
    x, _, _ = streaming.load_images(write_digit_folder(tmp_path / "digits"), split="train")
    assert isinstance(x, np.ndarray) and x.shape[1:] == (28, 28, 1)
    assert streaming.describe(x) == "images held in memory (float32)"


def test_streamed_folder_mixes_grey_and_colour_and_resizes_as_load_dataset(tmp_path):
    from siamese_xai.data import datasets, streaming

    rng = np.random.default_rng(0)
    for k, name in enumerate(["a", "b"]):
        (tmp_path / name).mkdir()
        for i in range(3):
            size, mode = ((48, 48), "L") if i == 0 else ((48, 56), "RGBA" if k else "RGB")
            shape = (*size, {"L": 1, "RGB": 3, "RGBA": 4}[mode])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8).squeeze(), mode).save(tmp_path / name / f"{i}.png")
    with pytest.raises(ValueError, match="have different sizes: .* pass image_size"):
        _streamed(tmp_path)
    for kwargs in ({"image_size": (48, 56)}, {"image_size": (48, 56), "cache_bytes": 0}):
        images, y, _ = _streamed(tmp_path, **kwargs)
        x, y_mem, _ = datasets.load_dataset(tmp_path, split="train", test_fraction=0.4, image_size=(48, 56))
        assert images.shape == x.shape and images.shape[3] == 3 and images.cache is None  # resized: not cached
        np.testing.assert_array_equal(np.asarray(images), x)
        np.testing.assert_array_equal(y, y_mem)
    for path in tmp_path.glob("*/[12].png"):  # one size: the uint8 cache holds them, converted as load_dataset does
        Image.open(path).crop((0, 0, 48, 48)).save(path)
    images, _, _ = _streamed(tmp_path)
    assert images.cache is not None and images.shape[1:] == (48, 48, 3)
    x, _, _ = datasets.load_dataset(tmp_path, split="train", test_fraction=0.4)
    np.testing.assert_array_equal(np.asarray(images), x)
    np.testing.assert_array_equal(list(streaming.image_dataset((images, np.zeros((len(x), 1))), 8, 0))[0][0],
                                  list(data.make_image_dataset((x, np.zeros((len(x), 1))), 8, 0))[0][0])


@pytest.mark.slow  # about a minute; make test trains the same streamed folder in test_train_says_when_the_network_did_not_learn
def test_streamed_photo_run_states_it_and_trains_end_to_end(random_label_photos, tmp_path, capsys, monkeypatch):
    # the size's defaults with one epoch per stage: the first line and a whole streamed run in seconds
    monkeypatch.setattr(defaults, "PHOTO_SNN_STEPS", 1)
    monkeypatch.setattr(defaults, "PHOTO_AE_STEPS", 1)
    metrics = training.train_run(TrainConfig.paper(), tmp_path / "run", random_label_photos, test_fraction=0.4,
                                 size_defaults=True, verbose=1, min_steps=400)  # the CLI's default minimum
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("48x48x3 images, ") and "training images: photo networks" in first
    assert first.endswith("images streamed: read from the folder once, held as uint8 (1 MB), "
                          "each batch converted as it is drawn")
    assert metrics["data"]["image_shape"] == [48, 48, 3] and metrics["num_test_images"] == 250 - metrics["data"]["num_train"]
    assert (tmp_path / "run" / "decoder.keras").exists()
    trained = TrainConfig.from_dict(files.read_json(tmp_path / "run" / "config.json"))
    assert (trained.snn.epochs, trained.autoencoder.epochs, trained.decoder.epochs) == (1, 1, 1)  # min_steps ignored


def test_the_page_holds_the_tables_rendered_from_the_committed_json():
    """docs/photos.md's numbers are `benchmarks.speed.photos_report`'s rendering of the JSON files, marker by marker."""
    import re

    from benchmarks.speed import photos_report

    page = photos_report.PAGE.read_text()
    tables = photos_report.tables()
    assert {"train-96", "explain-memory"} <= set(tables)
    for name, table in tables.items():
        assert photos_report.block(name, table) in page, f"docs/photos.md's table {name!r} is not its JSON's"
    assert set(re.findall(r"<!-- table:([\w-]+) -->", page)) == set(tables)  # no marker left without its table


def test_object_share_rules_by_hand():
    from benchmarks.speed import photos_objects as po

    assert po.pick([1, 0, 1, 0, 0, 1], 4, 2).tolist() == [0, 1, 2, 3]  # the first two of each class
    with pytest.raises(ValueError, match="`n` must be a positive multiple of the 2 classes. Received: n=3"):
        po.pick([0, 1], 3, 2)
    ranking = np.zeros((1, 2, 3, 2))
    ranking[0, 0, 0] = [1, 2]  # 3
    ranking[0, 1, 2] = [0, 2.5]  # 2.5
    ranking[0, 1, 0] = [2, 0]  # 2
    scores = po.pixel_scores(ranking)
    assert scores.shape == (1, 2, 3) and scores[0, 0, 0] == 3
    region = np.array([[[True, False, False], [False, False, True]]])
    # |R| = 2: the two top pixels (0, 0) and (1, 2) are both in R; flipped scores put neither there
    assert po.object_share(scores, region).tolist() == [1.0]
    assert po.object_share(-scores, region).tolist() == [0.0]
    shares = {"mc": np.linspace(0.5, 0.9, 12), "intensity": np.full(12, 0.3), "random": np.full(12, 0.3)}
    tests = po.compare(shares)
    assert set(tests) == {"mc", "random"} and tests["random"]["p"] == 1.0 and tests["random"]["verdict"] == "overlap"
    assert tests["mc"]["p_holm"] == min(1.0, 2 * tests["mc"]["p"]) and tests["mc"]["verdict"] == "better"


def test_the_knn_ceiling_by_hand():
    from benchmarks.speed.photos import knn_sse

    train = np.array([0.0, 1.0, 3.0]).reshape(3, 1, 1, 1)
    test = np.array([1.0, 2.0]).reshape(2, 1, 1, 1)
    d2 = np.array([[0.0, 1.0, 2.0], [5.0, 1.0, 1.0]])  # test 0 nearest 0 then 1; test 1: 1 and 2 tie, then 0
    assert knn_sse(test, train, d2, 1) == ((1 - 0) ** 2 + (2 - 1) ** 2) / 2
    assert knn_sse(test, train, d2, 2) == ((1 - 0.5) ** 2 + (2 - 2) ** 2) / 2
