"""The figures of mc and of the probe at 28, 96 and 224 px: no panel's title runs into another's."""

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from siamese_xai import plotting
from siamese_xai.config import ExplainConfig, ProbeConfig
from siamese_xai.explainers.explanation import Explanation
from siamese_xai.explainers.probe_explanation import ProbeExplanation

SHAPES = [(28, 28, 1), (96, 96, 3), (224, 224, 3)]
NAMES = ("ankle boot with a long name", "sandal", "pullover", "trouser", "bag")


def mc_explanation(shape):
    rng = np.random.default_rng(0)
    image = lambda: rng.random((1, *shape)).astype(np.float32)  # noqa: E731
    change = image()
    mask = np.zeros((1, *shape), bool)
    mask.flat[np.argsort(-change.ravel())[:100]] = True
    return Explanation(
        input=image(), reconstruction=image(), embedding=np.zeros((1, 20), np.float32),
        reference=np.ones((1, 20), np.float32), predicted_class=[0], distances=np.arange(5, dtype=np.float32)[None],
        explained_class=[0], reference_distance=[1.0], indices=np.arange(5)[None], sigma=[0.01],
        mean_abs_change=change, mean_signed_change=change - 0.5, mask=mask, config=ExplainConfig(), seed=0,
        class_names=NAMES, decoder_path={"mode": "kinks", "fused": True, "notes": []},
    )


def probe_explanation(shape, question):
    rng = np.random.default_rng(1)
    image = lambda: rng.random((1, *shape)).astype(np.float32)  # noqa: E731
    mask = np.zeros((1, *shape), bool)
    mask[:, : shape[0] // 4, : shape[1] // 4] = True
    return ProbeExplanation(
        input=image(), proposal=image(), embedding=np.zeros((1, 20), np.float32),
        distances=np.arange(5, dtype=np.float32)[None], predicted_class=[0], explained_class=[0],
        contrast_class=[1], target=np.ones((1, 20), np.float32), margin=[1.0], drop_map=image() - 0.5,
        ranking=image(), regions=np.zeros((1, *shape[:2]), np.int32), region_drop=np.ones((1, 4), np.float32),
        mask=mask, set_size=[3], flips=[True], final_margin=[-0.5], counterfactual=image(), n_calls=[40],
        config=ProbeConfig(), cell=max(1, shape[0] // 14), class_names=NAMES, question=question,
    )


def assert_titles_apart(axes):
    """Every pair of titles' text boxes (after a draw) is disjoint, and each title lies inside the figure."""
    fig = axes[0].figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for ax in axes if ax.get_title()]
    assert len(boxes) >= 3
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    width, height = fig.bbox.width, fig.bbox.height
    for box in boxes:
        assert box.x0 >= 0 and box.x1 <= width and box.y1 <= height, (box, width, height)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}px")
def test_mc_figure_titles_do_not_overlap(shape):
    axes = plotting.plot_result(mc_explanation(shape))
    assert axes[0].images[0].get_array().shape[:2] == shape[:2]
    assert_titles_apart(axes)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}px")
@pytest.mark.parametrize("question", [{"kind": "contrast"}, {"kind": "verify", "threshold": 1.5}],
                         ids=lambda q: q["kind"])
def test_probe_figure_titles_do_not_overlap(shape, question):
    axes = plotting.plot_result(probe_explanation(shape, question))
    assert axes[0].images[0].get_array().shape[:2] == shape[:2]
    assert_titles_apart(axes)
