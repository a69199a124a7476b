import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from siamese_xai import plotting
from siamese_xai.config import TemplateContrastConfig
from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.explanation import Explanation


def make_explanation(explained_class=4):
    rng = np.random.default_rng(0)
    change = rng.random((1, 28, 28, 1)).astype(np.float32)
    mask = np.zeros((1, 28, 28, 1), bool)
    mask.flat[np.argsort(-change.ravel())[:30]] = True
    return Explanation(
        input=rng.random((1, 28, 28, 1)).astype(np.float32),
        reconstruction=rng.random((1, 28, 28, 1)).astype(np.float32),
        embedding=np.zeros((1, 20), np.float32),
        reference=np.ones((1, 20), np.float32),
        predicted_class=[9],
        distances=np.arange(10, dtype=np.float32)[None],
        explained_class=[explained_class],
        reference_distance=[1.0],
        indices=np.arange(5)[None],
        sigma=[0.01],
        mean_abs_change=change,
        mean_signed_change=change - 0.5,
        mask=mask,
        config=ExplainConfig(q=30),
        seed=0,
    )


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("plotting must never call plt.show()")

    monkeypatch.setattr(plt, "show", fail)
    yield
    plt.close("all")


def test_quadruple_draws_input_reconstruction_overlay_mask():
    e = make_explanation()
    axes = plotting.plot_explanation(e)
    assert axes.shape == (4,)
    np.testing.assert_array_equal(axes[0].images[0].get_array(), e.input[0, ..., 0])
    np.testing.assert_array_equal(axes[1].images[0].get_array(), e.reconstruction[0, ..., 0])
    overlay = axes[2].images[1].get_array()
    np.testing.assert_array_equal(overlay[..., 3] > 0, e.mask[0, ..., 0])
    np.testing.assert_array_equal(axes[3].images[0].get_array(), e.mask[0, ..., 0].astype(float))
    assert "SNN: 9" in axes[0].get_title()
    assert "class 4" in axes[2].get_title()
    assert "q=30" in axes[3].get_title()


def test_a_contrastive_explanation_is_titled_with_both_classes():
    e = make_explanation()
    arrays = {f: getattr(e, f) for f in e.fields if f not in ("sigma", "indices", "contrast_class")}
    contrast = Explanation(**arrays, moved_indices=e.indices, path_length=e.sigma, contrast_class=[7],
                           config=TemplateContrastConfig(q=30), seed=0)
    assert " ".join(plotting.plot_explanation(contrast)[2].get_title().split()) == "explanation of 4 vs 7"
    assert " ".join(plotting.plot_explanation(e)[2].get_title().split()) == "explanation of class 4"


def test_draws_into_given_axes_and_checks_their_number():
    _, grid = plt.subplots(2, 2)
    out = plotting.plot_explanation(make_explanation(), grid)
    assert list(out) == list(grid.ravel())
    assert all(len(ax.images) >= 1 for ax in out)
    _, three = plt.subplots(1, 3)
    with pytest.raises(ValueError, match="`axes` must hold 4 matplotlib Axes. Received: 3"):
        plotting.plot_explanation(make_explanation(), three)


def test_single_panels_take_an_optional_ax():
    e = make_explanation(explained_class=-1)
    _, ax = plt.subplots()
    assert plotting.plot_overlay(e, ax) is ax
    assert "the pair" in ax.get_title()
    new = plotting.plot_signed_change(e)
    lo, hi = new.images[0].get_clim()
    assert lo == -hi == pytest.approx(-np.abs(e.mean_signed_change).max())
    assert plotting.plot_mask(e).images
    with pytest.raises(TypeError, match="`explanation` must be an Explanation"):
        plotting.plot_overlay(np.zeros((28, 28)))


def test_quadruple_saves_to_a_file(tmp_path):
    fig, axes = plt.subplots(1, 4)
    plotting.plot_explanation(make_explanation(), axes)
    fig.savefig(tmp_path / "quad.png")
    assert (tmp_path / "quad.png").stat().st_size > 1000


def test_index_picks_one_input_of_a_batch():
    one = make_explanation()
    arrays = {f: np.concatenate([getattr(one, f)] * 2) for f in one.fields}
    two = Explanation(**{**arrays, "predicted_class": [9, 3]}, config=one.config, seed=0)
    assert "SNN: 3" in plotting.plot_input(two, index=1).get_title()
    assert "SNN: 9" in plotting.plot_explanation(two, index=-2)[0].get_title()
    with pytest.raises(ValueError, match=r"`index` must be an integer in \[-2, 2\) .* Received: index=2"):
        plotting.plot_mask(two, index=2)


def test_titles_use_class_names_and_rgb_images_are_drawn_in_colour():
    rng = np.random.default_rng(1)
    one = make_explanation()
    rgb = {f: getattr(one, f) for f in one.fields}
    for f in ("input", "reconstruction", "mean_abs_change", "mean_signed_change"):
        rgb[f] = rng.random((1, 8, 6, 3)).astype(np.float32)
    rgb["mask"] = rng.random((1, 8, 6, 3)) > 0.7
    names = tuple(f"class-{k}" for k in range(10))
    e = Explanation(**rgb, config=ExplainConfig(q=5), seed=0, class_names=names)
    axes = plotting.plot_explanation(e)
    # titles are wrapped to their panel's width: compare them with the line breaks undone
    titles = [" ".join(ax.get_title().split()) for ax in axes]
    assert titles[0] == "input (SNN: class-9)" and titles[2] == "explanation of class class-4"
    np.testing.assert_array_equal(axes[0].images[0].get_array(), e.input[0])  # (8, 6, 3): in colour
    overlay = axes[2].images[1].get_array()
    np.testing.assert_array_equal(overlay[..., 3] > 0, e.mask[0].any(axis=-1))


def test_class_names_are_drawn_as_written_never_as_mathtext(tmp_path):
    # "$}{$" is mathtext that does not parse: drawing it failed; "$x$" would be drawn as an italic x
    names = tuple(["$}{$ costs $5", "$x$", "--><script>alert(1)</script><!--"] + [f"c{k}" for k in range(3, 10)])
    one = make_explanation()
    e = Explanation(**{f: getattr(one, f) for f in one.fields}, config=ExplainConfig(q=5), seed=0, class_names=names)
    e = Explanation(**{**{f: getattr(e, f) for f in e.fields}, "predicted_class": [0], "explained_class": [1]},
                    config=e.config, seed=0, class_names=names)
    axes = plotting.plot_explanation(e)
    assert " ".join(axes[0].get_title().split()) == "input (SNN: $}{$ costs $5)"
    assert all(not ax.title.get_parse_math() for ax in axes)
    assert " ".join(axes[2].get_title().split()) == "explanation of class $x$"
    # an SVG holds the titles as text (comments); matplotlib escapes them, so the file is one svg and no script
    import xml.etree.ElementTree as ET

    axes[0].figure.savefig(tmp_path / "e.svg", format="svg")
    tags = {element.tag.split("}")[-1] for element in ET.parse(tmp_path / "e.svg").iter()}
    assert "script" not in tags and "svg" in tags
    plotting.save_figure(axes[0].figure, tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 1000


def _rgb_explanation(h, w, names):
    rng = np.random.default_rng(2)
    one = make_explanation()
    arrays = {f: getattr(one, f) for f in one.fields}
    for f in ("input", "reconstruction", "mean_abs_change", "mean_signed_change"):
        arrays[f] = rng.random((1, h, w, 3)).astype(np.float32)
    arrays["mask"] = rng.random((1, h, w, 3)) > 0.8
    return Explanation(**arrays, config=ExplainConfig(q=5), seed=0, class_names=names)


def _rgb_probe_explanation(h, w, names):
    """A probe's contrastive explanation of one random RGB image (every field of its shape and dtype)."""
    from siamese_xai.config import ProbeConfig
    from siamese_xai.explainers.probe_explanation import FIELDS, ProbeExplanation

    rng = np.random.default_rng(3)
    images = {"input", "proposal", "drop_map", "ranking", "counterfactual"}
    shapes = {"embedding": (1, 20), "target": (1, 20), "distances": (1, 10), "regions": (1, 40, h, w),
              "region_drop": (1, 40), "mask": (1, h, w, 3)}
    arrays = {}
    for name, dtype in FIELDS.items():
        shape = (1, h, w, 3) if name in images else shapes.get(name, (1,))
        arrays[name] = (rng.random(shape) > 0.8 if dtype is np.bool_ else np.array(["other"]) if dtype is np.str_
                        else (rng.random(shape) * 9).astype(dtype))
    for name in ("input", "proposal", "counterfactual"):
        arrays[name] = rng.random((1, h, w, 3)).astype(np.float32)
    arrays.update(explained_class=np.array([3]), contrast_class=np.array([7]), predicted_class=np.array([3]))
    return ProbeExplanation(**arrays, config=ProbeConfig(), cell=max(2, round(min(h, w) / 7)), class_names=names)


@pytest.mark.parametrize("h, w", [(8, 8), (28, 28), (32, 32), (64, 64), (32, 96), (96, 32), (96, 96), (224, 224)])
@pytest.mark.parametrize("estimator", ["mc", "probe"])
def test_quadruple_is_legible_with_long_names_and_not_mostly_white_space(h, w, estimator):
    """The figure of `explain` (the paper's quadruple, or the probe's panels) at every image size, 8 to 224 px."""
    names = tuple(f"triangle vs circle, variant {k} of a long-named class" for k in range(10))
    make = _rgb_explanation if estimator == "mc" else _rgb_probe_explanation
    axes = plotting.plot_result(make(h, w, names))  # plot_explanation or plot_probe
    fig = axes[0].figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    titles = [ax.title.get_window_extent(renderer) for ax in axes]
    for left, right in zip(titles, titles[1:]):
        assert left.x1 <= right.x0, (left, right)  # neighbouring titles never run into each other
    for box in titles:  # nor off the figure (constrained layout sets the top title at the edge: 0.03 px over, measured)
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1 + 1
    assert all(ax.title.get_fontsize() >= 8 for ax in axes)
    # the images and their titles cover most of the figure, whatever its aspect
    shown = sum(box.width * box.height for ax in axes for box in (ax.get_window_extent(renderer), ax.title.get_window_extent(renderer)))
    assert shown / (fig.bbox.width * fig.bbox.height) > 0.5


def _minimal_result_class():
    """A result class of an estimator the plotting module has never heard of: the common fields only."""
    import dataclasses

    from siamese_xai.explainers.results import BatchResult

    fields = {"input": np.float32, "distances": np.float32, "predicted_class": np.int64,
              "explained_class": np.int64, "contrast_class": np.int64, "ranking": np.float32, "mask": np.bool_}

    @dataclasses.dataclass(frozen=True, eq=False, repr=False)
    class Minimal(BatchResult):
        input: np.ndarray
        distances: np.ndarray
        predicted_class: np.ndarray
        explained_class: np.ndarray
        contrast_class: np.ndarray
        ranking: np.ndarray
        mask: np.ndarray
        class_names: tuple | None = None
        FIELDS = fields

        def __post_init__(self):
            self._freeze_arrays()

        def summary(self, i=0):
            return f"the found set of image {i}"

    return Minimal


def test_any_result_class_is_drawn_from_its_common_fields():
    rng = np.random.default_rng(0)
    ranking = rng.standard_normal((2, 28, 28, 1)).astype(np.float32)
    mask = ranking > 1.5
    result = _minimal_result_class()(input=rng.random((2, 28, 28, 1)), distances=rng.random((2, 3)),
                                     predicted_class=[0, 1], explained_class=[0, 1], contrast_class=[-1, -1],
                                     ranking=ranking, mask=mask)
    axes = plotting.plot_result(result, index=1)
    assert len(axes) == 3
    assert axes[0].images[0].get_array().shape == (28, 28)
    np.testing.assert_allclose(axes[1].images[0].get_array(), ranking[1, ..., 0])
    assert axes[2].get_title() == "the found set of image 1"
    assert len(axes[2].collections) >= 1  # the mask's outline
    with pytest.raises(ValueError, match="3 matplotlib Axes"):
        plotting.plot_any(result, plt.subplots(1, 2)[1])
    with pytest.raises(TypeError, match="BatchResult"):
        plotting.plot_any(object())
    plt.close("all")


def test_a_result_class_without_a_common_field_is_refused_when_defined():
    from siamese_xai.explainers.results import BatchResult

    with pytest.raises(TypeError, match=r"Lacking lacks \['distances', 'predicted_class'"):
        class Lacking(BatchResult):
            FIELDS = {"input": np.float32, "explained_class": np.int64, "contrast_class": np.int64,
                      "ranking": np.float32, "mask": np.bool_}
