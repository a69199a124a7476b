"""The peers of the pair benchmark, run through their own APIs in their own environment.

`distance-explainer` (dianna) and xaitk-saliency pull in PyTorch with its CUDA
libraries and a chain of other packages; they are not installed beside
TensorFlow in the project's environment. This module runs in a separate
virtual environment that holds only them (`ensure_environment` creates it:
`python -m venv ENV`, then `pip install torch distance-explainer
xaitk-saliency`), and it imports neither TensorFlow nor `siamese_xai`.

`benchmarks.evaluation.pairs` starts it as `ENV/bin/python -m benchmarks.evaluation.pair_peers`
and talks to it over its standard input and output (pickled tuples):

- the benchmark sends `("job", {"method", "image", "reference", ...})`;
- the peer's code runs with a model function that sends each batch of
  images it wants embedded as `("embed", batch)` and waits for
  `("h", embeddings)`: f runs in the benchmark's process, which counts every
  image, so the peers' f calls are counted like every other method's;
- the worker answers `("result", map)` or `("error", traceback)`.

The peers, as their authors ship them:

- `distance_explainer.DistanceExplainer(...).explain_image_distance(f,
  image, embedded_reference)`: RISE-style masks, its defaults (1000 masks,
  feature_res 8, p_keep 0.5, the closest 10% of masked images weighted +1 and
  the farthest 10% -1, its cosine distance); positive = keeping the pixels
  brings the image closer to the reference;
- `xaitk_saliency.impls.gen_image_similarity_blackbox_sal.sbsm.SBSMStack(
  window_size, stride).generate(ref_image, [query], blackbox)`: sliding
  occlusion windows over the reference image, scored by the rise of the
  Euclidean distance to the query (clipped at 0, scaled to [0, 1]): a map of
  what makes the two similar.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import traceback
from pathlib import Path

PACKAGES = ("torch==2.13.0", "distance-explainer==0.6.0", "xaitk-saliency==0.15.0")


def ensure_environment(env: Path, log=print) -> Path:
    """The peers' Python: `env/bin/python`, creating the environment with `PACKAGES` when it lacks them."""
    env = Path(env)
    python = env / "bin" / "python"
    check = [str(python), "-c", "import distance_explainer, xaitk_saliency.impls.gen_image_similarity_blackbox_sal.sbsm"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    log(f"creating the peers' environment {env} ({', '.join(PACKAGES)}; minutes)")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PACKAGES], check=True)
    subprocess.run(check, check=True)
    return python


def _distance_explainer(job, embed):
    import numpy as np
    from distance_explainer import DistanceExplainer

    ex = DistanceExplainer(axis_labels={2: "channels"}, batch_size=job.get("batch_size", 100),
                           **job.get("options", {}))
    np.random.seed(job.get("seed", 0))  # dianna draws its masks from NumPy's global generator
    out = ex.explain_image_distance(embed, job["image"], np.asarray(job["reference"]))
    return np.asarray(out, np.float32).reshape(job["image"].shape[:2])


def _sbsm(job, embed):
    import numpy as np
    from smqtk_descriptors.interfaces.image_descriptor_generator import ImageDescriptorGenerator
    from xaitk_saliency.impls.gen_image_similarity_blackbox_sal.sbsm import SBSMStack

    class Blackbox(ImageDescriptorGenerator):
        def generate_arrays_from_images(self, img_mat_iter):
            imgs = np.stack([np.asarray(m, np.float32).reshape(job["image"].shape) for m in img_mat_iter])
            return list(embed(imgs))

        def get_config(self):
            return {}

    sal = SBSMStack(**job.get("options", {})).generate(job["image"], [job["query"]], Blackbox())
    return np.asarray(sal, np.float32).reshape(job["image"].shape[:2])


RUNNERS = {"distance_explainer": _distance_explainer, "sbsm": _sbsm}


def main():
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever the peers print goes to stderr; stdout carries only the protocol
    inp = sys.stdin.buffer

    def send(message):
        pickle.dump(message, out, protocol=4)
        out.flush()

    def embed(batch):
        import numpy as np

        send(("embed", np.ascontiguousarray(batch, dtype=np.float32)))
        kind, h = pickle.load(inp)
        return h

    while True:
        try:
            kind, job = pickle.load(inp)
        except EOFError:
            return
        if kind == "stop":
            return
        try:
            send(("result", RUNNERS[job["method"]](job, embed)))
        except Exception:  # the benchmark reports it and stops
            send(("error", traceback.format_exc()))


if __name__ == "__main__":
    main()
