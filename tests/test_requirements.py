"""The import-time check names the missing or incompatible piece of the stack and its fix."""
from importlib import metadata
from pathlib import Path

import pytest

from coat_backbone import requirements


def _fake_versions(monkeypatch, versions):
    def version(package):
        if versions.get(package) is None:
            raise metadata.PackageNotFoundError(package)
        return versions[package]
    monkeypatch.setattr(requirements.metadata, 'version', version)


# The two stacks CI tests (constraints-torch2.1.txt and constraints.txt).
USERS_STACK = {'torch': '2.1.2', 'numpy': '1.26.4', 'mmengine': '0.10.7', 'timm': '1.0.31',
               'mmcv': '2.1.0', 'mmdet': '3.3.0', 'mmsegmentation': '1.2.2'}
GOOD = {**USERS_STACK, 'torch': '2.13.0', 'numpy': '2.4.6'}


@pytest.mark.parametrize('stack', [USERS_STACK, GOOD], ids=['torch2.1', 'current'])
def test_the_tested_stacks_pass(monkeypatch, stack):
    _fake_versions(monkeypatch, stack)
    requirements.check_requirements()


@pytest.mark.parametrize('change, message', [
    ({'torch': '2.0.1'}, r'needs torch>=2\.1,<2\.14 \(the tested range\), but torch 2\.0\.1 is '
                         r'installed\. Fix: pip install "torch>=2\.1,<2\.14"'),
    ({'torch': '2.14.0'}, r'torch 2\.14\.0 is installed'),
    ({'numpy': '1.24.4'}, r'needs numpy>=1\.26,<3'),
    ({'timm': None}, r'needs timm>=1\.0\.31,<1\.1, which is not installed'),
    ({'mmengine': '0.10.3'}, r'mmengine 0\.10\.3 is installed'),
    ({'mmdet': '3.2.0'}, r'needs mmdet>=3\.3\.0,<3\.4\.0'),
    ({'mmcv': '2.2.0'}, r'mmdet \(installed here\) needs mmcv>=2\.1\.0,<2\.2\.0'),
    ({'mmcv': None, 'mmdet': None}, r'mmsegmentation \(installed here\) needs mmcv'),
])
def test_bad_stacks_are_named_with_the_fix(monkeypatch, change, message):
    _fake_versions(monkeypatch, {**GOOD, **change})
    with pytest.raises(ImportError, match=message) as error:
        requirements.check_requirements()
    assert '\n' not in str(error.value)  # one line
    assert 'tools/setup_env.sh' in str(error.value) and '.venv/bin/python' in str(error.value)
    if 'mmcv' in change:  # no PyPI wheels: OpenMMLab's prebuilt one, or the source build
        assert 'download.openmmlab.com/mmcv/dist/cu121/torch2.1' in str(error.value)
        assert 'MMCV_WITH_OPS=1 pip install --no-build-isolation' in str(error.value)


def test_setup_py_declares_the_tested_ranges():
    """setup.py reads TESTED itself (without importing the package): one source of the ranges."""
    import runpy
    from unittest import mock
    with mock.patch('setuptools.setup') as setup:
        runpy.run_path(str(Path(requirements.__file__).parents[1] / 'setup.py'))
    declared = setup.call_args.kwargs['install_requires']
    for package in ('torch', 'numpy', 'mmengine', 'timm', 'huggingface_hub', 'safetensors'):
        assert requirements.wanted(package) in declared
    assert requirements.wanted('mmdet') in setup.call_args.kwargs['extras_require']['det']


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
