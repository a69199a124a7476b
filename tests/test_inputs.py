import numpy as np
import pytest
from PIL import Image

from siamese_xai.data import mnist as data
from siamese_xai.data import inputs


def test_grayscale_png_round_trip(tmp_path):
    pixels = (np.arange(784).reshape(28, 28) % 256).astype(np.uint8)
    Image.fromarray(pixels, "L").save(tmp_path / "a.png")
    image, note = inputs.read_image(tmp_path / "a.png")
    assert image.shape == (28, 28, 1) and image.dtype == np.float32 and note == ""
    np.testing.assert_allclose(image[..., 0], pixels / 255.0)


def test_rgb_is_converted_with_a_note(tmp_path):
    Image.new("RGB", (28, 28), (255, 255, 255)).save(tmp_path / "c.png")
    image, note = inputs.read_image(tmp_path / "c.png")
    assert "converted from RGB to grayscale" in note
    np.testing.assert_allclose(image, 1.0)


def test_wrong_size_and_not_an_image(tmp_path):
    Image.new("L", (32, 28)).save(tmp_path / "big.png")
    with pytest.raises(ValueError, match="must be 28x28 pixels.*Received: 32x28"):
        inputs.read_image(tmp_path / "big.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="not an image"):
        inputs.read_image(tmp_path / "notes.png")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inputs.read_image(tmp_path / "missing.png")


def test_mnist_spec():
    image, name, label, _ = inputs.resolve_input("mnist:test:5")
    x, y = data.load_mnist("test")
    np.testing.assert_array_equal(image, x[5])
    assert name == "mnist-test-5" and label == int(y[5])
    with pytest.raises(ValueError, match="below 10000"):
        inputs.resolve_input("mnist:test:10000")
    with pytest.raises(ValueError, match="must look like"):
        inputs.resolve_input("mnist:val:1")


def test_colour_shapes_read_rgb_and_repeat_gray(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (8, 6, 3)).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(tmp_path / "rgb.png")
    image, note = inputs.read_image(tmp_path / "rgb.png", (8, 6, 3))
    assert image.shape == (8, 6, 3) and note == ""
    np.testing.assert_allclose(image, rgb / 255.0)
    Image.fromarray(rgb[..., 0], "L").save(tmp_path / "gray.png")
    image, note = inputs.read_image(tmp_path / "gray.png", (8, 6, 3))
    assert "converted from L to RGB" in note
    np.testing.assert_allclose(image, np.repeat(rgb[..., :1], 3, axis=-1) / 255.0)
    with pytest.raises(ValueError, match=r"must be 8x6 pixels \(width x height\). Received: 6x8"):
        inputs.read_image(tmp_path / "rgb.png", (6, 8, 3))
