import numpy as np
import pytest

# reproduce.paper is the reproduction harness (the reproduce package), not the library
from reproduce import paper


def _summary(distances, pixel_distances, errors=None):
    n = len(distances)
    return {"predicted": np.argmin(distances, axis=1), "distances": np.asarray(distances, float),
            "recon_sse": np.zeros(n) if errors is None else np.asarray(errors, float),
            "pixel_distances": np.asarray(pixel_distances, float)}


def _confident(classes, num_classes=10, far=2.0):
    """Prototype distances where image i is nearest to classes[i] (distance 1) and every other prototype is far."""
    d = np.full((len(classes), num_classes), far)
    d[np.arange(len(classes)), classes] = 1.0
    return d


def test_good_rule_walks_the_data_order_up_from_the_5_percent_quantile():
    y = np.array([1] * 21 + [2])
    pix = np.zeros((22, 10))
    pix[:, 1] = np.random.default_rng(0).permutation(22)  # a(x): index i has rank pix[i, 1] among...
    by_rank = np.argsort(pix[:21, 1], kind="stable")  # the 1s, most typical first
    distances = _confident(y)
    # the 5% quantile of 21 is position round(0.05 * 20) = 1; make it unsure (runner-up 1.1x as far): skipped
    distances[by_rank[1], 7] = 1.1
    distances[by_rank[0], 1] = 5.0  # the most typical 1 is misclassified, but it comes before the start anyway
    index, note = paper.select_example(paper.figure_spec("fig4"), y, _summary(distances, pix))
    assert index == by_rank[2] and "5% quantile upward" in note and "(1 skipped)" in note


def test_poor_rule_walks_down_from_the_98_percent_quantile():
    y = np.full(101, 2)
    pix = np.zeros((101, 10))
    pix[:, 2] = np.random.default_rng(1).permutation(101)
    distances = _confident(y)
    index, _ = paper.select_example(paper.figure_spec("fig8"), y, _summary(distances, pix))
    assert pix[index, 2] == 98.0
    distances[pix[:, 2] == 98.0, 2] = 3.0  # now misclassified: the next less atypical one
    index, note = paper.select_example(paper.figure_spec("fig8"), y, _summary(distances, pix))
    assert pix[index, 2] == 97.0 and "98% quantile downward" in note


def test_confused_rule_takes_the_most_9_like_4_confidently_classified_as_9_then_falls_back():
    y = np.array([4, 4, 4, 4, 9])
    pix = np.zeros((5, 10))
    pix[:, 9] = [5.0, 1.0, 2.0, 3.0, 0.0]  # against pix[:, 4] = 0: 4s by 9-likeness: 1, 2, 3, 0
    distances = _confident([9, 4, 9, 9, 9])
    distances[2, 4] = 1.1  # classified as 9, but not confidently: skipped
    index, note = paper.select_example(paper.figure_spec("fig9"), y, _summary(distances, pix))
    assert index == 3 and "confidently classified as 9 (2 skipped)" in note
    index, note = paper.select_example(paper.figure_spec("fig9"), y, _summary(_confident([4, 4, 4, 4, 9]), pix))
    assert index == 1 and "classifies no test 4 confidently as 9" in note


def test_the_choice_survives_small_weight_differences():
    # Another CPU's rounding moves every distance of the network a little; the data order does not move, and the
    # vetoes hold with a margin, so the same images are chosen. (The former rule, a quantile of reconstruction
    # error, chose another image when errors moved by 1e-3 relative.)
    rng = np.random.default_rng(2)
    n = 3000
    y = rng.integers(0, 10, n)
    pix = rng.random((n, 10)) * 100
    distances = rng.random((n, 10)) + 0.5
    distances[np.arange(n), y] = rng.random(n) * 0.5  # mostly correct, with any margin
    confused = np.flatnonzero(y == 4)[:40]
    distances[confused, 9] = 0.01
    errors = rng.random(n)
    base = _summary(distances, pix, errors)
    chosen = [paper.select_example(spec, y, base)[0] for spec in paper.PAPER_FIGURES]
    for trial in range(20):
        moved = _summary(distances * (1 + 1e-3 * rng.standard_normal(distances.shape)), pix,
                         errors * (1 + 1e-3 * rng.standard_normal(n)))
        assert [paper.select_example(spec, y, moved)[0] for spec in paper.PAPER_FIGURES] == chosen


def test_pixel_distances_by_hand():
    x = np.zeros((3, 2, 1, 1))
    x[0, 0] = 1.0  # class 0: images [1, 0] and [0, 0] -> mean [0.5, 0]; class 1: [0, 1]
    x[2, 1] = 1.0
    d = paper.pixel_distances(x, [0, 0, 1], num_classes=2)
    np.testing.assert_allclose(d, [[0.25, 2.0], [0.25, 1.0], [1.25, 0.0]])


def test_unknown_figure_is_named():
    with pytest.raises(ValueError, match="name='fig10'"):
        paper.figure_spec("fig10")


def test_summary_on_a_linear_toy():
    protos = np.array([[0.0], [10.0]], np.float32)
    x = np.zeros((3, 28, 28, 1), np.float32)
    x[1] += 0.5
    embed = lambda b: b.reshape(len(b), -1)[:, :1] * 20.0
    decoder = lambda h: np.broadcast_to(h[:, :, None, None] / 20.0, (len(h), 28, 28, 1))
    s = paper.test_set_summary(embed, decoder, protos, x, y=[0, 1, 1], batch_size=2)
    assert s["predicted"].tolist() == [0, 1, 0]
    assert s["pixel_distances"].shape == (3, 2) and s["pixel_distances"][1, 1] == s["pixel_distances"][2, 1]
    np.testing.assert_allclose(s["recon_sse"], 0.0, atol=1e-6)


@pytest.mark.slow
def test_paper_run_figures_on_the_tiny_run(tiny_run, tmp_path):
    from reproduce import fig9_contrast

    from siamese_xai import files, runs
    from siamese_xai.config import ExplainConfig

    run_dir, _ = tiny_run
    run = paper.PaperRun(run_dir, config=ExplainConfig(n_perturbations=64))
    e, record = run.explain_figure("fig9")
    # train_run recorded the finished run's identity, and the explanation carries it
    assert e.run_id == files.read_json(run_dir / runs.IDENTITY_FILE)["run_id"] == run.explainer.run_id
    assert record["true_class"] == 4 and record["figure"] == "fig9"
    assert record["N"] == 64 and len(record["J"]) == record["s"] == 5
    assert record["nearest_prototypes"][0]["distance"] <= record["nearest_prototypes"][1]["distance"]
    assert len(e) == 1 and record["J"] == e.indices[0].tolist() and record["mask_pixels"] == record["q"]
    assert record["predicted_class"] == int(np.argmin(e.distances[0])) == record["explained_class"]
    d = record["class_difference"]
    assert d["k"] == record["explained_class"] and d["l"] == record["nearest_prototypes"][1]["class"]
    assert d["chance"] == record["q"] / 784 and 0 <= d["share_in_top_abs"] <= 1
    e2, record2 = run.explain_figure("fig9")
    assert record2 == record  # deterministic for a seed
    with pytest.raises(ValueError, match="one image"):
        paper.explanation_record(run.explainer.explain(run.x[:2]), 0, 4, 1.0)
    # the contrast figure (the decoded path: its own config, its own fields)
    contrast = fig9_contrast.write(run, tmp_path)
    assert contrast["test_index"] == record["test_index"] and contrast["q"] == record["q"]
    assert contrast["n_path_points"] == 64 and contrast["path_length"] > 0
    assert files.read_json(tmp_path / "fig9_contrast.json") == contrast
    curve = paper.convergence_curve(run.explainer, run.x[:2], [16, 64], reference_n=256, seeds=(0, 1))
    assert set(curve) == {16, 64} and all(len(v) == 4 for v in curve.values())
    assert all(((0 <= v) & (v <= 1)).all() for v in curve.values())


def test_report_renders_every_figure_and_the_run_numbers():
    figure = lambda name, sse, ink, i: {
        "figure": name, "test_index": 7, "true_class": 4, "predicted_class": 9, "explained_class": 9,
        "nearest_prototypes": [{"class": 9, "distance": 0.25}, {"class": 4, "distance": 0.5}], "recon_sse": sse,
        "J": [1, 2], "sigma": 0.001, "s": 2, "q": 100, "N": 5000, "mask_on_ink": ink, "selection": f"rule of {name}",
        "class_difference": {"k": 9, "l": 4, "share_in_top_abs": 0.1 * (i + 1), "share_in_top_k_over_l": 0.05 * (i + 1),
                             "chance": 100 / 784},
    }
    figures = [figure(spec.name, 10.0 * (i + 1), 0.5, i) for i, spec in enumerate(paper.PAPER_FIGURES)]
    metrics = {"prototype_accuracy": 0.9916, "recon_sse_decoder": 38.84, "recon_sse_autoencoder": 56.6,
               "alignment_sse": 0.192, "seconds": {"snn": 127.0}}
    config = {"embedding_dim": 20, "seed": 0, "snn": {}, "autoencoder": {}, "decoder": {}}
    convergence = {"iou_mean": {"50": 0.5, "500": 0.9, "5000": 0.99}, "seconds": 10.7}
    text = paper.render_report(metrics, config, figures, convergence, "a test machine")
    assert "99.16%" in text and "38.84" in text and "Machine: a test machine." in text
    for spec in paper.PAPER_FIGURES:
        assert f"[{spec.name}]({spec.name}.png)" in text and f"rule of {spec.name}" in text
    # Figs. 4-7 are the "good" ones: their mean error, 25.0, is quoted against the test-set mean
    assert "(mean 25.0) against a test-set mean of 38.8" in text
    assert "0.9 at N = 500" in text
    # Fig. 9 (the sixth record) quotes its own class-difference shares, chance and Figs. 4-7's means (0.25, 0.125)
    fig9_row = next(line for line in text.splitlines() if line.startswith("| Fig. 9"))
    assert "60% lies among the q pixels where g(c_9) and g(c_4) differ most and 30% among" in fig9_row
    assert "a random mask: 13%" in fig9_row and "25% and 12% on average" in fig9_row
    assert "Diagnostic only (g's own class templates" in fig9_row  # never quoted as evidence for the claim


def test_class_difference_shares_by_hand():
    # 2x2 image: g(c_k) - g(c_l) = [[0.9, -0.8], [0.1, 0.0]]; q = 2
    g_k = np.array([[1.0, 0.1], [0.2, 0.5]])[..., None]
    g_l = np.array([[0.1, 0.9], [0.1, 0.5]])[..., None]
    mask = np.array([[True, False], [True, False]])[..., None]
    d = paper.class_difference_shares(mask, g_k, g_l)
    # top |diff|: pixels 0 and 1 -> mask holds pixel 0 only: 1/2; top diff: pixels 0 and 2 -> 2/2
    assert d == {"share_in_top_abs": 0.5, "share_in_top_k_over_l": 1.0, "chance": 0.5}
    with pytest.raises(ValueError, match="`mask` must mark"):
        paper.class_difference_shares(np.zeros_like(mask), g_k, g_l)
