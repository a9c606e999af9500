"""What every generated dataset of the demos shares: a directory that only its generator writes,
marked incomplete until done, and a ``manifest.json`` (generator name, version, arguments) that
makes asking again for a finished dataset return at once."""
import json
import shutil
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np

MANIFEST = 'manifest.json'
SPLIT_CODES = {'train': 0, 'val': 1}  # seeds the generator of each split's images


def dataset_is_current(root: Path, manifest: dict, expected: List[Path]) -> bool:
    """True when ``root`` holds a complete dataset written with exactly ``manifest``."""
    return _read_manifest(root) == manifest and all(file.is_file() for file in expected)


def claim_directory(root: Path, generator: str, owned: List[str]) -> None:
    """Prepare ``root`` for ``generator`` to write: only a directory that is empty or holds this
    generator's dataset (complete or interrupted) is ever touched. Until the generator writes its
    final manifest, ``root`` carries one that marks the dataset incomplete, so an interrupted run
    is redone on the next call instead of being refused or mistaken for a finished one."""
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f'{root} exists and is not a directory; pass another root')
    if root.is_dir() and any(root.iterdir()):
        found = (_read_manifest(root) or {}).get('generator')
        if found is None:
            raise FileExistsError(f'{root} is not empty and holds no {MANIFEST} of a synthetic '
                                  'dataset; pass an empty or new directory as root')
        if found != generator:
            raise FileExistsError(f'{root} holds the synthetic {found!r} dataset, not '
                                  f'{generator!r}; pass an empty or new directory as root')
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).write_text(json.dumps(dict(generator=generator, incomplete=True)))
    for name in owned:
        shutil.rmtree(root / name, ignore_errors=True)


def write_image(path: Path, pixels: np.ndarray, params: Sequence[int] = ()) -> None:
    """`cv2.imwrite` (BGR or single-channel `pixels`) that raises where it would return False."""
    if not cv2.imwrite(str(path), pixels, list(params)):
        raise OSError(f'could not write {path}')


def finish_dataset(root: Path, manifest: dict) -> None:
    """Write the final manifest, last of all: until then `claim_directory`'s marks the dataset
    incomplete."""
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _read_manifest(root: Path) -> Optional[dict]:
    """The parsed ``root/manifest.json``, or None where it is missing or not a JSON object."""
    try:
        found = json.loads((root / MANIFEST).read_text())
    except (FileNotFoundError, IsADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return found if isinstance(found, dict) else None
