"""The package as a user installs it: the wheel, without extras, in a fresh virtual environment.

`pip install siamese-xai` brings install_requires and nothing else, so every
public module must import with those alone (scipy, for instance, must be a
requirement, not something an extra happens to pull in). The venv is created
without `--system-site-packages`, so nothing from the development environment
leaks in; pip's cache makes the second run fast.
"""

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# modules that need an extra: without it, importing them must say which extra to install
EXTRA_MODULES = {"siamese_xai.scale.beam": "siamese-xai[beam]"}


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


PUBLIC_MODULES = sorted(  # subpackages too
    _module_name(p)
    for p in (ROOT / "siamese_xai").rglob("*.py")
    if (not p.stem.startswith("_") or p.stem == "__init__") and _module_name(p) not in EXTRA_MODULES
)


def test_public_modules_are_listed():
    # a guard on the list the slow test imports: a rename must not shrink it silently
    assert {"siamese_xai", "siamese_xai.cli", "siamese_xai.evaluation.metrics", "siamese_xai.explainers.siamese", "siamese_xai.decoding",
            "siamese_xai.decoding.evaluator"} <= set(PUBLIC_MODULES)
    assert all((ROOT / (name.replace(".", "/") + ".py")).is_file() for name in EXTRA_MODULES)
    assert not any(m.split(".")[-1].startswith("_") for m in PUBLIC_MODULES if m != "siamese_xai")


def test_licence_and_citation_are_shipped():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.lstrip().startswith("Apache License") and "END OF TERMS AND CONDITIONS" in licence
    setup = (ROOT / "setup.cfg").read_text()
    assert "license = Apache-2.0" in setup and "license_files = LICENSE" in setup
    citation = (ROOT / "CITATION.cff").read_text()
    assert "cff-version:" in citation and "1911.07702" in citation and "preferred-citation:" in citation


def _run(cmd, cwd, env, timeout):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_wheel_without_extras_imports_every_public_module(tmp_path):
    # Several minutes the first time (pip fetches TensorFlow into its cache), about one after that.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(ROOT)],
         cwd=tmp_path, env=env, timeout=600)
    (wheel,) = wheels.glob("siamese_xai-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in z.namelist())

    fresh = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(fresh)
    python = fresh / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], cwd=tmp_path, env=env, timeout=1800)

    # run from tmp_path (not the source tree) so that only the installed wheel can be imported
    script = (
        "import importlib, siamese_xai\n"
        f"for name in {PUBLIC_MODULES!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    assert module.__file__.startswith(" + repr(str(fresh)) + "), module.__file__\n"
        "for name in siamese_xai.__all__:\n"
        "    getattr(siamese_xai, name)\n"
        f"for name, extra in {EXTRA_MODULES!r}.items():\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as err:\n"
        "        assert extra in str(err), str(err)\n"
        "    else:\n"
        "        raise AssertionError(name + ' imported without its extra')\n"
        "print('imported', len(" + repr(PUBLIC_MODULES) + "))\n"
    )
    out = _run([str(python), "-c", script], cwd=tmp_path, env=env, timeout=600).stdout
    assert f"imported {len(PUBLIC_MODULES)}" in out

    extras = _run([str(python), "-m", "pip", "list", "--format=freeze"], cwd=tmp_path, env=env, timeout=120).stdout
    assert "shap==" not in extras.lower() and "pytest==" not in extras.lower()  # no extra came in

    help_text = _run([str(fresh / "bin" / "siamese-xai"), "--help"], cwd=tmp_path, env=env, timeout=300).stdout
    assert "usage: siamese-xai" in help_text and "explain-split" in help_text
