"""Converting, publishing and verifying CoaT checkpoints.

Conversion reads any file `coat_backbone.checkpoint` accepts (official, timm, mmengine detector or
segmentor files; local, a URL or a Hub name), checks the weights against the model strictly, and
writes only weights plus a small plain `meta` dict: a .pth file that loads with
`weights_only=True` anywhere, or a .safetensors file (each shared tensor stored once, the `meta`
as its string metadata). Files are written atomically and never over an existing file unless
asked: nothing a user has is lost.
"""
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional, Union

import torch

from ..checkpoint import extract_state_dict, local_copy, read_checkpoint
from ..models.coat import arch_of
from .builder import model_from_state_dict
from .outputs import PathLike, write_atomically

# sha256 prefix of each published official checkpoint -> (arch, training resolution).
PUBLISHED: Dict[str, tuple] = {
    'c6efc33c': ('tiny', 224), '40667eec': ('mini', 224), '7479cf9b': ('small', 224),
    'e88e96b0': ('lite_tiny', 224), '6b4a8ae5': ('lite_mini', 224),
    '8d362f48': ('lite_small', 224), 'a750cd63': ('lite_medium', 224),
    'f9129688': ('lite_medium', 384)}

# backbone: CoaT keys; backbone-prefixed: the same under `backbone.` (a detector's or segmentor's
# `load_from` then fills the backbone only); classifier: CoaTClassifier keys, the timm layout;
# weights: every weight of the file as it is (e.g. a whole detector), training state dropped.
FORMATS = ('backbone', 'backbone-prefixed', 'classifier', 'weights')
_NAME_HASH = re.compile(r'_([0-9a-f]{8})$')


def sha256_of(path: PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for chunk in iter(lambda: file.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def published_path(path: PathLike, sha256: str) -> Path:
    """`name.pth` -> `name_<sha256[:8]>.pth`, the convention torch.hub and mmengine check."""
    path = Path(path)
    return path.with_name(f'{path.stem}_{sha256[:8]}{path.suffix}')


def _plain(value: object) -> Optional[object]:
    """`value` if it is built only of plain Python types (drops unpickled placeholders)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        items = [_plain(item) for item in value]
        lost = any(new is None and old is not None for new, old in zip(items, value))
        return None if lost else type(value)(items)
    if isinstance(value, dict):
        return {key: new for key, item in value.items()
                if isinstance(key, str) and (new := _plain(item)) is not None}
    return None


def convert_checkpoint(source: PathLike, to: str = 'backbone',
                       arch: Optional[Union[str, dict]] = None) -> dict:
    """The `{'state_dict': ..., 'meta': ...}` checkpoint of `source` in format `to` (`FORMATS`).

    `arch` defaults to the one the weights' shapes give (`arch_of`).
    """
    if to not in FORMATS:
        raise ValueError(f'Unknown format {to!r}: choose one of {FORMATS}.')
    source = os.path.expanduser(str(source))
    checkpoint = read_checkpoint(source)
    meta = dict(converted_from=os.path.basename(source),
                source_sha256=sha256_of(local_copy(source)), coat_format=to)
    if to == 'weights':
        state_dict, _ = extract_state_dict(checkpoint, prefix='', source=source)
        return dict(state_dict=state_dict, meta={**(_plain(checkpoint.get('meta')) or {}), **meta})
    state_dict, _ = extract_state_dict(checkpoint, source=source)
    arch = arch or arch_of(state_dict)
    state_dict = model_from_state_dict(state_dict, source, arch,
                                       classifier=to == 'classifier').state_dict()
    if to == 'backbone-prefixed':
        state_dict = {f'backbone.{key}': value for key, value in state_dict.items()}
    meta['coat_arch'] = arch
    return dict(state_dict=state_dict, meta=meta)


def _stored_once(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The state dict without the other names of a tensor stored under several (CoaT's shared
    modules), which safetensors refuses to write; loading fills them back."""
    seen, kept = set(), {}
    for key, tensor in state_dict.items():
        storage = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.shape)
        if storage not in seen:
            seen.add(storage)
            kept[key] = tensor.contiguous()
    return kept


def save_checkpoint(checkpoint: dict, path: PathLike, force: bool = False, publish: bool = False,
                    protected: Iterable[PathLike] = ()) -> Path:
    """Write `checkpoint` atomically: torch.save, or a safetensors file where `path` ends in
    `.safetensors`; with `publish` the file name gets its sha256 prefix."""
    def write(temporary: Path) -> None:
        if Path(path).suffix == '.safetensors':
            from safetensors.torch import save_file
            metadata = {key: value if isinstance(value, str) else json.dumps(value)
                        for key, value in checkpoint['meta'].items()}
            save_file(_stored_once(checkpoint['state_dict']), str(temporary), metadata=metadata)
            return
        with open(temporary, 'xb') as file:
            torch.save(checkpoint, file)

    rename = (lambda temporary: published_path(path, sha256_of(temporary))) if publish else None
    return write_atomically(path, write, force=force, protected=protected, rename=rename)


@dataclass
class Verification:
    """What a checkpoint file is: its hash, the published file it matches, its variant."""
    sha256: str
    published: Optional[tuple]  # (arch, resolution) when the hash is a published one
    # The arch the weights' shapes give, whatever the hash: a published variant's name, else a
    # dict of settings; None when they are not CoaT's.
    arch: Optional[Union[str, dict]]
    name_hash: Optional[str]  # the `_<8 hex>` suffix of the file name, if it has one

    @property
    def name_matches(self) -> Optional[bool]:
        return None if self.name_hash is None else self.sha256.startswith(self.name_hash)


def verify_checkpoint(path: PathLike) -> Verification:
    """Hash `path` (a file, URL or Hub name), look it up among the published files and infer its
    variant from its weights."""
    name = os.path.expanduser(str(path))
    state_dict, _ = extract_state_dict(read_checkpoint(name), source=name)
    local = Path(local_copy(name))
    sha256 = sha256_of(local)
    match = _NAME_HASH.search(local.stem)
    return Verification(sha256=sha256, published=PUBLISHED.get(sha256[:8]),
                        arch=arch_of(state_dict), name_hash=match.group(1) if match else None)
