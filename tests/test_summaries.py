"""TensorBoard: the autoencoder and decoder stages write image summaries after every epoch."""

import numpy as np
import tensorflow as tf

from siamese_xai import runs


def _images(event_dir):
    """{tag: [(step, (n, H, W, C) uint8 images)]} from a TensorBoard event folder."""
    found = {}
    for path in sorted(event_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "images":
                    continue
                tensor = tf.make_ndarray(value.tensor)  # [width, height, png, png, ...]
                pngs = [tf.io.decode_png(p).numpy() for p in tensor[2:]]
                found.setdefault(value.tag, []).append((event.step, np.stack(pngs)))
    return found


def test_image_summaries_after_every_epoch(tiny_run):
    run_dir, _ = tiny_run
    ae = _images(run_dir / runs.LOGS_DIR / "autoencoder")
    dec = _images(run_dir / runs.LOGS_DIR / "decoder")
    assert set(ae) == {"autoencoder/x", "autoencoder/g_f_x", "autoencoder/g_e_x"}
    assert set(dec) == {"decoder/x", "decoder/g_f_x"}
    for tag, entries in {**ae, **dec}.items():
        assert [step for step, _ in entries] == [1], tag  # the tiny config: one epoch, one entry at epoch 1
        assert entries[0][1].shape == (8, 28, 28, 1), tag
    # the x panel is the training images themselves, the others the saved networks' reconstructions of them
    from siamese_xai.data import mnist as data

    x, _ = data.load_mnist("train")
    np.testing.assert_array_equal(ae["autoencoder/x"][0][1], np.round(x[:8] * 255).astype(np.uint8))
    np.testing.assert_array_equal(dec["decoder/x"][0][1], ae["autoencoder/x"][0][1])
    load = lambda name: runs.load_model(run_dir, name)  # noqa: E731
    h = load(runs.SNN_FILE)(x[:8], training=False)
    joint, final = load(runs.DECODER_JOINT_FILE), load(runs.DECODER_FILE)
    want = {
        "autoencoder/g_f_x": joint(h, training=False),
        "autoencoder/g_e_x": joint(load(runs.ENCODER_FILE)(x[:8], training=False), training=False),
        "decoder/g_f_x": final(h, training=False),  # one epoch: the panel shows the saved decoder
    }
    for tag, images in want.items():
        # tf.summary.image's conversion to uint8; the networks are evaluated again here, so a value within
        # float32 rounding of a rounding boundary may land one level away
        png = tf.image.convert_image_dtype(tf.clip_by_value(images, 0.0, 1.0), tf.uint8, saturate=True).numpy()
        got = {**ae, **dec}[tag][0][1]
        diff = np.abs(got.astype(int) - png.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (tag, diff.max(), (diff > 0).mean())
    assert not np.array_equal(want["autoencoder/g_f_x"], want["decoder/g_f_x"])  # the fine-tuning changed g
