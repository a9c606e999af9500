"""The versions this package is tested with, and the import-time check that names anything outside
them with its fix, so that a mismatched environment fails at once rather than deep inside mmdet.

`TESTED` is the one place the ranges live: setup.py reads it too. Each minimum is the lowest
version of the two stacks CI tests (constraints-torch2.1.txt: torch 2.1 with OpenMMLab's prebuilt
mmcv, and constraints.txt: current torch), each maximum the first version past the newest
known-good one where such a version is known to break or is a new major release.
"""
from importlib import metadata, util
from pathlib import Path
from typing import Optional

from packaging.version import Version

# package -> (minimum, exclusive maximum)
TESTED = {
    'torch': ('2.1', '2.14'),  # mmcv 2.1.0 does not build against torch 2.14 (C++20 headers)
    'numpy': ('1.26', '3'),
    'mmengine': ('0.10.7', '0.11'),
    'timm': ('1.0.31', '1.1'),
    'huggingface_hub': ('0.36', '3'),
    'safetensors': ('0.4.5', '1'),
    'mmcv': ('2.1.0', '2.2.0'),  # mmdet 3.x and mmseg 1.x refuse mmcv >= 2.2.0 at import
    'mmdet': ('3.3.0', '3.4.0'),
    'mmsegmentation': ('1.2.2', '1.3.0'),
}
# Needed by `import coat_backbone`; mmcv, mmdet and mmseg are checked where they are installed.
CORE = ('torch', 'numpy', 'mmengine', 'timm')
PREBUILT_MMCV = ('pip install mmcv==2.1.0 -f '
                 'https://download.openmmlab.com/mmcv/dist/cu121/torch2.1/index.html')
BUILT_MMCV = 'MMCV_WITH_OPS=1 pip install --no-build-isolation "mmcv==2.1.0" (setuptools<81)'


def wanted(package: str) -> str:
    """The tested range of `package` as a pip requirement, e.g. 'torch>=2.1,<2.14'."""
    minimum, maximum = TESTED[package]
    return f'{package}>={minimum},<{maximum}'


def _installed(package: str) -> Optional[str]:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _fix(package: str) -> str:
    if package == 'mmcv':  # no PyPI wheels: OpenMMLab's for torch 2.1, else a source build
        install = f'{PREBUILT_MMCV} (torch 2.1, CUDA 12.1), or build it: {BUILT_MMCV}'
    else:
        install = f'pip install "{wanted(package)}"'
    return (f'Fix: {install}; or run `bash tools/setup_env.sh` for a tested environment (.venv) '
            f'and use its .venv/bin/python.')


def _check(package: str, needed_by: str) -> None:
    version = _installed(package)
    if version is None:
        raise ImportError(f'{needed_by} needs {wanted(package)}, which is not installed. '
                          f'{_fix(package)}')
    minimum, maximum = TESTED[package]
    if not Version(minimum) <= Version(version) < Version(maximum):
        raise ImportError(f'{needed_by} needs {wanted(package)} (the tested range), but '
                          f'{package} {version} is installed. {_fix(package)}')


def _has_compiled_ops(package: str) -> bool:
    """Whether `package` ships its `_ext` extension, looked up on disk: importing mmcv to ask
    would cost seconds on every `import coat_backbone`."""
    spec = util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(next(Path(location).glob('_ext.*'), None) is not None
               for location in spec.submodule_search_locations)


def check_requirements() -> None:
    """Raise ImportError naming any missing or out-of-range piece of the stack, in one line."""
    for package in CORE:
        _check(package, 'coat-backbone')
    for user in ('mmdet', 'mmsegmentation'):
        if _installed(user):
            _check(user, 'coat-backbone')
            _check('mmcv', f'{user} (installed here)')
    if _installed('mmdet') and not _has_compiled_ops('mmcv'):
        raise ImportError('mmcv is installed without its compiled ops (mmcv-lite, or built with '
                          f'MMCV_WITH_OPS=0), which mmdet needs for RoIAlign and NMS. '
                          f'{_fix("mmcv")}')
