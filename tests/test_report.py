"""The HTML gallery of an explain-split folder (siamese_xai.scale.gallery), driven in headless Chromium."""

import json
import os
import shutil

import numpy as np
import pytest
from image_files import write_digit_folder, write_tfrecords

from siamese_xai import cli
from siamese_xai.scale import gallery as report
from siamese_xai.scale import shards
from siamese_xai.data import sources


def test_summary_counts_confusion_and_margins_by_hand():
    from types import SimpleNamespace

    results = SimpleNamespace(
        label=np.array([0, 1, 1, 2, -1]),
        predicted_class=np.array([0, 1, 2, 2, 0]),
        distances=np.array([[0.1, 0.5, 0.3], [0.4, 0.2, 0.9], [0.6, 0.5, 0.45], [1.0, 1.0, 0.0], [0.2, 0.7, 0.3]]),
    )
    s = report.summarize(results, 3)
    np.testing.assert_array_equal(s["true_counts"], [1, 2, 1])  # the unlabelled image is not counted
    np.testing.assert_array_equal(s["predicted_counts"], [2, 1, 2])
    np.testing.assert_array_equal(s["confusion"], [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    assert s["accuracy"] == pytest.approx(3 / 4)
    np.testing.assert_allclose(s["margin"], [0.2, 0.2, 0.05, 1.0, 0.1])  # 2nd nearest minus nearest
    np.testing.assert_allclose(s["distance"], [0.1, 0.2, 0.45, 0.0, 0.2])


def test_tiles_show_input_mask_and_signed_change():
    images = np.zeros((2, 4, 5, 1), np.float32)
    images[1] = 1.0
    masks = np.zeros((2, 4, 5, 1), bool)
    masks[0, 1, 2] = True
    change = np.zeros((2, 4, 5, 1), np.float32)
    change[0, 0, 0], change[0, 3, 4] = 2.0, -1.0
    t = report.tiles(images, masks, change)
    assert t.shape == (2, 4, 17, 3)
    np.testing.assert_array_equal(t[1, :, :5], 1.0)  # the white input
    np.testing.assert_array_equal(t[:, :, 5], 1.0)  # the gap
    assert t[0, 1, 6 + 2, 0] > 0.6 > t[0, 1, 6 + 2, 2]  # the masked pixel is red over black
    np.testing.assert_array_equal(t[0, 0, 6:11][[0, 1, 3, 4]], 0.0)  # unmasked black stays black
    red, blue = t[0, 0, 12], t[0, 3, 16]  # +max: the colour map's (dark) red end; -max / 2: blue
    assert red[0] > max(red[1], red[2]) and blue[2] > max(blue[0], blue[1])


@pytest.fixture(scope="module")
def split_dir(tiny_run, tmp_path_factory):
    from siamese_xai.data import mnist as data
    from siamese_xai.config import ExplainConfig
    from siamese_xai.explainers.siamese import SiameseExplainer

    explainer = SiameseExplainer.from_run(tiny_run[0], ExplainConfig.tiny())
    x, y = data.load_mnist("test")
    out = tmp_path_factory.mktemp("split")
    shards.explain_split(explainer, x[:150], out, labels=y[:150], shard_size=64, verbose=0,
                         source={"dataset": "mnist", "split": "test", "limit": 150})
    return out


def test_max_items_keeps_the_misclassified_then_the_smallest_margins(split_dir, tmp_path):
    page = report.write_report(split_dir, tmp_path / "k.html", limit=10)
    data = _page_data(page)
    results = shards.load_split_results(split_dir)
    margin = report.margins(results.distances)
    wrong = results.label != results.predicted_class
    expected = sorted(np.lexsort((margin, ~wrong))[:10].tolist())
    assert [item[0] for item in data["items"]] == [int(results.index[i]) for i in expected]
    assert [item[5] for item in data["items"]] == list(range(10))  # their places in the sprite sheet
    assert sum(wrong[expected]) == min(10, int(wrong.sum()))


def _page_data(page):
    """The `DATA` object the page's script reads."""
    return json.loads(page.read_text().split('<script type="application/json" id="data">', 1)[1].split("</script>")[0])


SPLIT_OPTIONS = ["--split", "test", "--shard-size", "4", "--n", "16", "--q", "10", "--s", "3", "--quiet"]


@pytest.mark.parametrize("kind", ["mnist", "folder", "folder_train_test", "tfds"])
def test_report_renders_every_split_explain_split_writes(tiny_run, tmp_path, kind, capsys):
    """explain-split, then report, on the command line: the page holds every image, read back from the source."""
    data_options = {
        "mnist": ["--limit", "6"],
        "folder": ["--data-dir", str(write_digit_folder(tmp_path / "digits", per_class=3)), "--test-fraction", "0.5"],
        "folder_train_test": ["--data-dir", str(write_digit_folder(tmp_path / "digits", "train_test", per_class=2))],
        "tfds": ["--dataset", "mnist", "--data-dir", os.environ["TFDS_DATA_DIR"], "--limit", "6"],
    }[kind]
    split, page = tmp_path / "split", tmp_path / "page.html"
    assert cli.main(["explain-split", "--run", str(tiny_run[0]), "--out", str(split)] + SPLIT_OPTIONS + data_options) == 0
    assert cli.main(["report", str(split), "--out", str(page)]) == 0, capsys.readouterr().err
    results = shards.load_split_results(split)
    assert len(results.index) == 6
    assert [item[0] for item in _page_data(page)["items"]] == results.index.tolist()
    # the manifest's description is the one sources.for_data writes, and reads back as that source
    description = results.manifest["source"]
    assert sources.from_description(description).describe() == description


def test_report_renders_a_split_of_tfrecord_files(tiny_run, tmp_path):
    from siamese_xai.config import ExplainConfig
    from siamese_xai.explainers.siamese import SiameseExplainer

    source = sources.TFRecordSource(str(write_tfrecords(tmp_path / "digits.tfrecord", 5)), (28, 28, 1))
    x, y = source.load()
    explainer = SiameseExplainer.from_run(tiny_run[0], ExplainConfig.tiny())
    shards.explain_split(explainer, x, tmp_path / "split", labels=y, shard_size=4, verbose=0, source=source.describe())
    page = report.write_report(tmp_path / "split")
    assert [item[1] for item in _page_data(page)["items"]] == y.tolist()


def test_script_json_cannot_close_the_script_element():
    from siamese_xai.scale.page import script_json

    value = {"names": ["</script><!--", "a & b > c", "\u2028\u2029", "é"]}
    text = script_json(value)
    assert not set("<>&\u2028\u2029") & set(text) and text.isascii()
    assert json.loads(text) == value


def test_the_page_allows_only_its_own_script_and_style(split_dir, tmp_path):
    import base64
    import hashlib
    import html
    import re

    text = report.write_report(split_dir, tmp_path / "p.html", limit=5).read_text()
    csp = html.unescape(re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', text).group(1))
    scripts = re.findall(r"<script>(.*?)</script>", text, re.S)
    style = re.search(r"<style>(.*?)</style>", text, re.S).group(1)

    def sha(t):
        return "'sha256-" + base64.b64encode(hashlib.sha256(t.encode()).digest()).decode() + "'"

    assert len(scripts) == 1 and f"script-src {sha(scripts[0])};" in csp and f"style-src {sha(style)};" in csp
    assert "default-src 'none'" in csp and "img-src data:" in csp and "unsafe" not in csp
    markup = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", text, flags=re.S)
    assert not re.search(r"<[^>]*\s(style|on\w+)=", markup, re.I)  # no style attribute, no inline handler


def _chromium():
    """A headless Chromium driven by Selenium, from the distribution's packages (never downloaded)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the [test] extra")
    browser, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (browser and driver):
        message = "headless Chromium is needed: apt-get install -y chromium chromium-driver (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


@pytest.mark.slow
def test_gallery_page_in_headless_chromium(split_dir, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = tmp_path / "gallery.html"
    assert cli.main(["report", str(split_dir), "--out", str(page)]) == 0
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # nothing fetched: no server, no network
    results = shards.load_split_results(split_dir)
    wrong = int(((results.label != results.predicted_class)).sum())
    assert 0 < wrong < 150  # the tiny run errs sometimes, so the filter has something to show

    browser = _chromium()
    try:
        browser.get(page.as_uri())
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        items = browser.find_elements(By.CSS_SELECTOR, "#gallery .item")
        assert len(items) == min(150, report.PAGE_SIZE)
        assert browser.find_element(By.ID, "count").text == f"{report.PAGE_SIZE} of 150 shown"
        browser.find_element(By.ID, "more").click()
        assert len(browser.find_elements(By.CSS_SELECTOR, "#gallery .item")) == 150

        def margins():
            return [float(e.get_attribute("data-margin")) for e in browser.find_elements(By.CSS_SELECTOR, "#gallery .item")]

        before = margins()
        Select(browser.find_element(By.ID, "sort")).select_by_value("margin-asc")
        after = margins()
        # reordered, smallest margin first (a new order shows the first page again)
        assert after == sorted(before)[:report.PAGE_SIZE] and after != before[:report.PAGE_SIZE]

        browser.find_element(By.ID, "wrong").click()  # misclassified: one click
        shown = browser.find_elements(By.CSS_SELECTOR, "#gallery .item")
        assert len(shown) == wrong
        assert all(e.get_attribute("data-true") != e.get_attribute("data-pred") for e in shown)
        Select(browser.find_element(By.ID, "true")).select_by_value("7")
        assert all(e.get_attribute("data-true") == "7" for e in browser.find_elements(By.CSS_SELECTOR, "#gallery .item"))

        browser.find_element(By.ID, "reset").click()
        browser.find_element(By.ID, "near").click()  # near the boundary: one click
        assert margins()[:5] == sorted(before)[:5]
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]

        shot = tmp_path / "gallery.png"
        assert browser.save_screenshot(str(shot))
    finally:
        browser.quit()
    pixels = np.asarray(Image.open(shot).convert("RGB"), np.float32)
    assert pixels.shape[0] >= 800 and pixels.shape[1] >= 1300  # the viewport of a 1400 x 1000 window
    # not blank: many colours, and a real spread of brightness
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50 and pixels.std() > 20


# Class names are data (folder names, tfds metadata, classes.json): each of these must show as written and run nothing.
HOSTILE_NAMES = [
    "<img src=x onerror=\"document.title='PWNED'\">",  # the first three are also class folders' names
    "Ünïcödé 数字 🙂 \"double\" 'single' `back`",
    "long " + "x" * 195,
    "</script><script>window.PWNED = 'script'</script>",
    "${window.PWNED = 'template'}",
    "');window.PWNED = 'quote';('",
    "&lt;b&gt;not bold&lt;/b&gt; & <b>bold?</b>",
    "<svg onload=\"window.PWNED = 'svg'\"></svg>",
    "<!-- <script>window.PWNED = 'comment'</script>",
    "$}{$ costs \u2028 $5",  # mathtext that does not parse, and a JavaScript line separator
]
HOSTILE_FILES = ["<img src=x onerror=alert(1)>.png", "\"quoted' é.png", "f" * 200 + ".png"]


def test_hostile_class_and_file_names_show_as_written_and_run_nothing(tiny_run, hostile_pairs, tmp_path):
    """The split's page and a pair list's page (one browser for both: it is slow to start)."""
    from selenium.webdriver.common.by import By

    from siamese_xai import runs

    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    runs.write_class_names(run, HOSTILE_NAMES, 10)
    folder = write_digit_folder(tmp_path / "data <svg onload=\"document.title='PWNED-dir'\">", per_class=3,
                                names=HOSTILE_NAMES[:3], file_names=HOSTILE_FILES)
    split, page = tmp_path / "split", tmp_path / "page.html"
    assert cli.main(["explain-split", "--run", str(run), "--data-dir", str(folder), "--test-fraction", "0.5",
                     "--out", str(split)] + SPLIT_OPTIONS) == 0
    assert cli.main(["report", str(split), "--out", str(page)]) == 0

    browser = _chromium()
    try:
        browser.get(page.as_uri())
        text = browser.execute_script
        assert browser.title == "Explanations of 6 images"
        assert text("return window.PWNED === undefined") and text("return document.scripts.length") == 2  # the data, the script
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors  # no script failed to parse, no injected element tried to load or run
        # no element from the data: every image is one of the page's own plots, no svg, no bold text
        assert len(browser.find_elements(By.CSS_SELECTOR, "img:not(.plot), svg, b, iframe, object")) == 0

        def texts(css):
            return text(f"return [...document.querySelectorAll({json.dumps(css)})].map((e) => e.textContent)")

        assert texts("#true option")[1:] == HOSTILE_NAMES and texts("#pred option")[1:] == HOSTILE_NAMES
        assert texts(".row > div:first-child tr th:first-child")[1:] == HOSTILE_NAMES  # counts per class
        assert texts(".row > div:last-child tr th:first-child")[1:] == HOSTILE_NAMES  # confusion: rows
        assert texts(".row > div:last-child tr:first-child th")[1:] == HOSTILE_NAMES  # and columns
        results = shards.load_split_results(split)
        shown = texts("#gallery .item")
        assert len(shown) == 6
        for item, t, p in zip(shown, results.label, results.predicted_class):
            assert f"true {HOSTILE_NAMES[t]} \u2192 {HOSTILE_NAMES[p]}" in item
        assert str(folder) in text("return document.querySelector('.meta').textContent")
        browser.find_element(By.ID, "wrong").click()  # the gallery redrawn: still nothing runs
        browser.find_element(By.ID, "reset").click()
        assert browser.title == "Explanations of 6 images" and text("return window.PWNED === undefined")
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        _pair_page_shows_names_and_runs_nothing(browser, hostile_pairs, tmp_path)
    finally:
        browser.quit()


def test_report_on_a_probe_folder_shows_its_mask_map_and_found_sets(tiny_run, tmp_path, capsys):
    """explain-split --estimator probe, then report: the page draws the probe's mask and margin drop, says each
    item's found set and flip, keeps its CSP, and runs in headless Chromium without an error."""
    import base64
    import hashlib
    import html
    import re

    from selenium.webdriver.common.by import By

    split, page = tmp_path / "split", tmp_path / "page.html"
    assert cli.main(["explain-split", "--run", str(tiny_run[0]), "--out", str(split), "--estimator", "probe",
                     "--split", "test", "--limit", "8", "--shard-size", "4", "--max-regions", "12", "--quiet"]) == 0
    assert cli.main(["report", str(split), "--out", str(page)]) == 0, capsys.readouterr().err
    results = shards.load_split_results(split)
    assert results.estimator == "probe" and results.manifest["explain_config"]["max_regions"] == 12
    text = page.read_text()
    assert "estimator probe" in text and "the margin drop f measured per region" in text
    items = _page_data(page)["items"]
    assert [item[0] for item in items] == list(range(8))
    for item, size, flips in zip(items, results.set_size, results.flips):
        assert item[6] == f"{size} region{'' if size == 1 else 's'} painted {'flip' if flips else 'do not flip'} f"
    # the sprite sheet's tiles are the probe's mask and drop map, as tiles() draws them
    np.testing.assert_array_equal(report.signed_map(results), results.drop_map)
    csp = html.unescape(re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', text).group(1))
    [script] = re.findall(r"<script>(.*?)</script>", text, re.S)
    assert "script-src 'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() in csp

    browser = _chromium()
    try:
        browser.get(page.as_uri())
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#gallery .item .found")]
        assert shown == [item[6] for item in items]
    finally:
        browser.quit()


def _sheet_tiles(page, count):
    """The first `count` tiles of a page's sprite sheet (its stylesheet's data URI), `(count, h, w, 3)` in [0, 1]."""
    import base64
    import io
    import re

    from PIL import Image

    text = page.read_text()
    uri = re.search(r"url\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", text).group(1)
    sheet = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))).convert("RGB"), np.float32) / 255
    w, h = _page_data(page)["tile"]
    rows = [divmod(i, report.SHEET_COLUMNS) for i in range(count)]
    return np.stack([sheet[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] for r, c in rows])


@pytest.fixture(scope="module")
def hostile_pairs(tiny_run, tmp_path_factory):
    """A pair list whose files and folder have hostile names, explained by the probe of a run with hostile class
    names: `(run, pair list, split folder, the pairs (3, 2, 28, 28, 1), the files as the list names them)`."""
    import csv

    from PIL import Image

    from siamese_xai import runs
    from siamese_xai.data import mnist as data

    root = tmp_path_factory.mktemp("pairs")
    run = root / "run"
    shutil.copytree(tiny_run[0], run)
    runs.write_class_names(run, HOSTILE_NAMES, 10)
    folder = root / "list <svg onload=\"document.title='PWNED-dir'\">"
    folder.mkdir()
    x, _ = data.load_mnist("test")
    files = [HOSTILE_FILES[0], "one.png", "two.png", HOSTILE_FILES[1], HOSTILE_FILES[2], "five.png"]
    for i, name in enumerate(files):
        Image.fromarray(np.round(x[i, ..., 0] * 255).astype(np.uint8)).save(folder / name, "PNG")
    with open(folder / "pairs.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("first", "second")] + [(files[i], files[i + 1]) for i in (0, 2, 4)])
    split = root / "split"
    pairs = np.round(x[:6] * 255).astype(np.float32).reshape(3, 2, 28, 28, 1) / 255
    h = np.asarray(runs.load_run(run).embed(pairs.reshape(6, 28, 28, 1), training=False), np.float64)
    d = np.sort(np.linalg.norm(h[0::2] - h[1::2], axis=1))
    tau = float(d[:2].mean())  # one pair the same, two different
    assert cli.main(["explain-split", "--run", str(run), "--pairs", str(folder / "pairs.csv"), "--out", str(split),
                     "--estimator", "probe", "--max-regions", "6", "--shard-size", "2", "--threshold", str(tau),
                     "--quiet"]) == 0
    return run, folder / "pairs.csv", split, pairs, [(files[i], files[i + 1]) for i in (0, 2, 4)]


def test_a_pair_folder_draws_both_images_both_maps_the_verdict_and_the_counterfactuals(hostile_pairs, tmp_path,
                                                                                         capsys):
    """report on an explain-split --pairs --threshold folder: each pair's verdict and distance, and for each of its
    two images its mask, map, found set and counterfactual (explain's own, given back from the mask), under the
    page's CSP."""
    import base64
    import hashlib
    import html
    import re

    from siamese_xai.explainers.probe import ProbeExplainer
    from siamese_xai.explainers.questions import Verify
    from siamese_xai.scale import pair_gallery

    run, _, split, written, names = hostile_pairs
    page = tmp_path / "pairs.html"
    assert cli.main(["report", str(split), "--out", str(page)]) == 0, capsys.readouterr().err
    results = shards.load_split_results(split)
    tau = results.manifest["threshold"]
    assert results.manifest["question"] == "verify"
    pairs = report.load_images(results.manifest, results.index, None)  # as explain-split read them (SHA-256 checked)
    np.testing.assert_allclose(pairs, written, atol=1e-6)
    data = _page_data(page)
    assert [item[:3] for item in data["items"]] == [[i, *names[i]] for i in range(3)]
    assert [item[3] for item in data["items"]] == results.predicted_class.tolist() and data["names"] == HOSTILE_NAMES
    np.testing.assert_allclose([item[4] for item in data["items"]], results.pair_distance, atol=1e-5)
    # the verdict at tau, and the probe's margin, |d - tau|, measured on the same pair
    assert [item[5] for item in data["items"]] == [pair_gallery.verdict(d, tau) for d in results.pair_distance]
    assert sorted(item[5].split(":")[0] for item in data["items"]) == ["different", "different", "same"]
    np.testing.assert_allclose(results.margin, np.abs(results.pair_distance - tau)[:, None] * [1, 1], atol=1e-4)
    # an accepted pair's images are blurred apart (the probe's "auto" for it), a rejected pair's painted together
    kinds = pair_gallery.painted_with(results)
    assert [k.tolist() for k in kinds] == [["blur"] * 2 if d <= tau else ["other"] * 2 for d in results.pair_distance]
    for item, sizes, calls, flips, how in zip(data["items"], results.set_size, results.n_calls, results.flips, kinds):
        assert item[7] == [f"{'blurring' if k == 'blur' else 'painting from the other image'} {s} "
                           f"region{'' if s == 1 else 's'} {'flips' if f else 'does not flip'} the verdict ({c} f calls)"
                           for s, c, f, k in zip(sizes, calls, flips, how)]
    text = page.read_text()
    assert "Explanations of 3 pairs" in text and "same or different at the threshold" in text and "counterfactual" in text
    csp = html.unescape(re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', text).group(1))
    [script] = re.findall(r"<script>(.*?)</script>", text, re.S)
    assert "script-src 'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() in csp
    markup = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", text, flags=re.S)
    assert not re.search(r"<[^>]*\s(style|on\w+)=", markup, re.I) and "<img src=x" not in text
    # the counterfactuals the page paints are those explain computes, from the two images and the masks alone
    config = shards.config_from_dict(results.manifest["explain_config"])
    both, others = np.concatenate([pairs[:, 0], pairs[:, 1]]), np.concatenate([pairs[:, 1], pairs[:, 0]])
    e = ProbeExplainer.from_run(run, config).explain(both, Verify(others, tau), seed=results.seed)
    painted = pair_gallery.counterfactuals(results, pairs)
    np.testing.assert_array_equal(painted[:, 0], e.counterfactual[:3])
    np.testing.assert_array_equal(painted[:, 1], e.counterfactual[3:])
    np.testing.assert_array_equal(results.flips, e.flips.reshape(2, 3).T)
    assert (painted != pairs).any()  # the found sets paint something
    # each tile, two rows (the first image's, the second's): image | with its mask | its map | its counterfactual
    got = _sheet_tiles(page, 3)
    want = pair_gallery.pair_tiles(pairs, results.mask, results.drop_map, painted)
    assert got.shape == want.shape == (3, 2 * 28 + 1, 4 * 28 + 3, 3)
    np.testing.assert_allclose(got, want, atol=1 / 255 + 1e-6)
    for row, role in ((slice(0, 28), 0), (slice(29, 57), 1)):
        for panel, image in ((0, pairs[:, role]), (3, painted[:, role])):
            np.testing.assert_allclose(got[:, row, panel * 29:panel * 29 + 28], np.repeat(image, 3, -1),
                                       atol=1 / 255 + 1e-6)
    assert cli.main(["report", str(split), "--out", str(page), "--max-items", "2"]) == 0  # the first 2 pairs
    assert [item[0] for item in _page_data(page)["items"]] == [0, 1]
    with pytest.raises(ValueError, match="explains a list of pairs"):
        report.write_report(split)
    assert cli.main(["report", str(split), "--data-dir", str(tmp_path)]) == 2
    assert "explains a list of pairs, whose images its pair list names" in capsys.readouterr().err


def _pair_page_shows_names_and_runs_nothing(browser, hostile_pairs, tmp_path):
    """The page of a pair list whose file names and run's class names are hostile, in `browser`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from siamese_xai.scale import pair_gallery

    _, pair_list, split, _, names = hostile_pairs
    page = pair_gallery.write_pair_report(split, tmp_path / "pairs.html")
    browser.get(page.as_uri())
    run = browser.execute_script
    assert browser.title == "Explanations of 3 pairs" and run("return window.PWNED === undefined")
    assert run("return document.scripts.length") == 2  # the data, the script
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "img, svg, b, iframe, object")) == 0

    def texts(css):
        return run(f"return [...document.querySelectorAll({json.dumps(css)})].map((e) => e.textContent)")

    results = shards.load_split_results(split)
    classes = [[HOSTILE_NAMES[k] for k in ks] for ks in results.predicted_class]
    assert texts("#gallery div.first") == [f"first: {a} \u00b7 nearest class {k}" for (a, _), (k, _) in zip(names, classes)]
    assert texts("#gallery div.second") == [f"second: {b} \u00b7 nearest class {k}" for (_, b), (_, k) in zip(names, classes)]
    from siamese_xai.scale import pair_gallery as pg

    assert texts("#gallery .verdict") == [f"#{i} {pg.verdict(d, results.manifest['threshold'])}"
                                          for i, d in enumerate(results.pair_distance)]
    assert len(texts("#gallery .found")) == 6
    assert str(pair_list) in run("return document.querySelector('.meta').textContent")
    Select(browser.find_element(By.ID, "sort")).select_by_value("dist-desc")  # redrawn: still nothing runs
    shown = [float(e.get_attribute("data-dist")) for e in browser.find_elements(By.CSS_SELECTOR, "#gallery .item")]
    assert shown == sorted(shown, reverse=True) and len(shown) == 3
    assert browser.title == "Explanations of 3 pairs" and run("return window.PWNED === undefined")
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
