"""The gallery page of an explain-split folder and a screenshot of it in headless Chromium.

    .venv/bin/python -m reproduce.gallery --split runs/beam_split/beam --out figures/gallery.png

Writes SPLIT/report.html (`siamese-xai report`), opens it in headless Chromium
(the distribution's `chromium` and `chromium-driver`, driven by Selenium from
the [test] extra), fails on any console error, clicks "near the boundary" and
saves a screenshot of the top of the page and of the gallery (`--out`, a PNG
of at most 1000 px wide). About a minute for the 10,000 MNIST test images.
"""

import argparse
import io
import shutil
import time
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", required=True, help="an explain-split folder")
    parser.add_argument("--out", default="figures/gallery.png")
    parser.add_argument("--data-dir", help="MNIST's location (default: $TFDS_DATA_DIR)")
    args = parser.parse_args()

    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    from siamese_xai.scale import gallery as report
    from siamese_xai.files import atomic_path

    t0 = time.perf_counter()
    page = report.write_report(args.split, data_dir=args.data_dir)
    print(f"{page} written in {time.perf_counter() - t0:.1f} s ({page.stat().st_size / 1e6:.1f} MB)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1250,1900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))
    try:
        browser.get(page.resolve().as_uri())
        browser.find_element(By.ID, "near").click()
        browser.execute_script("window.scrollTo(0, 0)")
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        if errors:
            raise SystemExit(f"console errors: {errors}")
        shot = browser.get_screenshot_as_png()
    finally:
        browser.quit()
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    image = image.resize((1000, round(image.height * 1000 / image.width)), Image.LANCZOS)
    image = image.quantize(colors=128, method=Image.Quantize.MEDIANCUT)  # a small file for the repository
    with atomic_path(Path(args.out), suffix=".png") as tmp:
        image.save(tmp, format="PNG", optimize=True)
    print(f"{args.out}: {image.width} x {image.height}")


if __name__ == "__main__":
    main()
