"""The package's public names: every one resolves, and importing the package alone loads no TensorFlow."""

import subprocess
import sys

import pytest

import siamese_xai


def test_every_public_name_resolves_to_its_module():
    for name in siamese_xai.__all__:
        value = getattr(siamese_xai, name)
        assert value.__module__ == siamese_xai._EXPORTS[name], name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        siamese_xai.nope


def test_importing_the_package_does_not_import_tensorflow():
    code = "import sys, siamese_xai; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_configs_live_in_config_and_the_result_does_not_import_the_explainer():
    import siamese_xai.config as config
    import siamese_xai.explainers.siamese as explain
    import siamese_xai.explainers.probe as probe

    assert explain.ExplainConfig is config.ExplainConfig and probe.ProbeConfig is config.ProbeConfig
    assert explain.TemplateContrastConfig is config.TemplateContrastConfig
    code = "import sys, siamese_xai.explainers.explanation; print('siamese_xai.explainers.siamese' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False"]
