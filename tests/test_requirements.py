"""The import-time check names the missing or incompatible piece of the stack and its fix."""
from importlib import metadata

import pytest

from coat_backbone import requirements


def _fake_versions(monkeypatch, versions):
    def version(package):
        if versions.get(package) is None:
            raise metadata.PackageNotFoundError(package)
        return versions[package]
    monkeypatch.setattr(requirements.metadata, 'version', version)


GOOD = {'torch': '2.13.0', 'mmengine': '0.10.7', 'timm': '1.0.31', 'mmcv': '2.1.0',
        'mmdet': '3.3.0', 'mmsegmentation': '1.2.2'}


def test_the_tested_stack_passes(monkeypatch):
    _fake_versions(monkeypatch, GOOD)
    requirements.check_requirements()


@pytest.mark.parametrize('change, message', [
    ({'timm': None}, r'needs timm>=0\.9\.0, which is not installed'),
    ({'mmengine': '0.9.1'}, r'mmengine 0\.9\.1 is installed'),
    ({'mmcv': '2.2.0'}, r'mmdet \(installed here\) needs mmcv>=2\.0\.0,<2\.2\.0'),
    ({'mmcv': None, 'mmdet': None}, r'mmsegmentation \(installed here\) needs mmcv'),
])
def test_bad_stacks_are_named_with_the_fix(monkeypatch, change, message):
    _fake_versions(monkeypatch, {**GOOD, **change})
    with pytest.raises(ImportError, match=message) as error:
        requirements.check_requirements()
    assert 'tools/setup_env.sh' in str(error.value) and '.venv/bin/python' in str(error.value)
    if 'mmcv' in change:  # no wheels for current torch: the source build that works
        assert 'MMCV_WITH_OPS=1 pip install --no-build-isolation' in str(error.value)


def test_mmcv_without_compiled_ops_is_named(monkeypatch):
    _fake_versions(monkeypatch, GOOD)
    monkeypatch.setattr(requirements, '_has_compiled_ops', lambda package: False)
    with pytest.raises(ImportError, match='without its compiled ops'):
        requirements.check_requirements()


def test_compiled_ops_are_found_without_importing_mmcv():
    """The stack's mmcv has its ops, and asking does not import mmcv (seconds per import)."""
    import subprocess
    import sys
    code = ('import sys; from coat_backbone import requirements as r; '
            "print(r._has_compiled_ops('mmcv'), r._has_compiled_ops('json'), "
            "'mmcv' in sys.modules)")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ['True', 'False', 'False']
