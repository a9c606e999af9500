"""Import-time check of the stack, so a broken environment fails with its fix, not deep inside
mmdet. The exact tested versions are pinned in constraints.txt."""
from importlib import metadata, util
from pathlib import Path
from typing import Optional, Tuple

from packaging.version import Version

FIX = ('Fix: run `bash tools/setup_env.sh` for the tested stack (constraints.txt) and run the '
       'tools with its `.venv/bin/python` (or `source .venv/bin/activate`), or install a '
       'compatible version yourself')
# mmcv has no wheels for current torch, and its source build needs these settings.
INSTALL = {'mmcv': 'MMCV_WITH_OPS=1 pip install --no-build-isolation "{package}{wanted}" '
                   '(with setuptools<81 installed)'}

# package -> (minimum, exclusive maximum)
REQUIRED = {'torch': ('2.0', None), 'mmengine': ('0.10.0', '0.11.0'), 'timm': ('0.9.0', None)}
# mmdet 3.x and mmseg 1.x refuse mmcv >= 2.2.0 at import.
MMCV_RANGE = ('2.0.0', '2.2.0')


def _installed(package: str) -> Optional[str]:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _wanted_and_install(package: str, minimum: str, maximum: Optional[str]) -> Tuple[str, str]:
    """The version range `package` must be in, and the command that installs it."""
    wanted = f'>={minimum}' + (f',<{maximum}' if maximum else '')
    return wanted, INSTALL.get(package, 'pip install "{package}{wanted}"').format(
        package=package, wanted=wanted)


def _check(package: str, minimum: str, maximum: Optional[str], needed_by: str) -> None:
    version = _installed(package)
    wanted, install = _wanted_and_install(package, minimum, maximum)
    if version is None:
        raise ImportError(f'{needed_by} needs {package}{wanted}, which is not installed. '
                          f'{FIX}: {install}.')
    parsed = Version(version)
    if parsed < Version(minimum) or (maximum and parsed >= Version(maximum)):
        raise ImportError(f'{needed_by} needs {package}{wanted}, but {package} {version} is '
                          f'installed. {FIX}: {install}.')


def _has_compiled_ops(package: str) -> bool:
    """Whether `package` ships its `_ext` extension, looked up on disk: importing mmcv to ask
    would cost seconds on every `import coat_backbone`."""
    spec = util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(next(Path(location).glob('_ext.*'), None) is not None
               for location in spec.submodule_search_locations)


def check_requirements() -> None:
    """Raise ImportError naming any missing or incompatible piece of the stack."""
    for package, (minimum, maximum) in REQUIRED.items():
        _check(package, minimum, maximum, 'coat-backbone')
    for user in ('mmdet', 'mmsegmentation'):
        if _installed(user):
            _check('mmcv', *MMCV_RANGE, needed_by=f'{user} (installed here)')
    if _installed('mmdet') and not _has_compiled_ops('mmcv'):
        _, build = _wanted_and_install('mmcv', *MMCV_RANGE)
        raise ImportError('mmcv is installed without its compiled ops (mmcv-lite, or built with '
                          'MMCV_WITH_OPS=0), which mmdet needs for RoIAlign and NMS. Fix: run '
                          f'`bash tools/setup_env.sh`, or build mmcv from source: {build}.')
