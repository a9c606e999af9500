"""Reading CoaT checkpoints in every format they come in, and loading them strictly.

Accepted files:
- official classification checkpoints: `{'model': state_dict, ...}` (training files also hold
  optimizer, lr_scheduler, epoch, model_ema and an argparse `args`);
- timm weights: a bare state dict with the official key names;
- mmengine / mmdet / mmseg files: `{'state_dict': ..., 'meta': ...}`, backbone keys prefixed with
  `backbone.` (the rest of the detector is dropped), including official mmdet 2.x CoaT detectors;
- any of these with DataParallel's `module.` prefix.

Files are read with `torch.load(weights_only=True)`, so loading a checkpoint never runs code;
in zip-format files (every `torch.save` since torch 1.6) metadata objects (optimizer args, log
buffers) are replaced by inert placeholders. Older, non-zip files must hold only weights and plain
containers, or be re-saved with a current torch. An http(s) URL is downloaded once into torch
hub's checkpoint cache.
Loading is all or nothing: another variant's weights, missing keys or foreign keys raise
`CheckpointError` naming them, and a file that cannot be read names its path.
"""
import hashlib
import math
import os
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from http.client import HTTPException
from typing import Dict, Iterator, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlparse

import torch
import torch.nn as nn
from mmengine.fileio import get_local_path
from mmengine.logging import print_log

StateDict = Dict[str, torch.Tensor]

_WRAPPER_PREFIXES = ('module.',)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


class _InertMeta(type):
    def __setstate__(cls, state: object) -> None:
        """Pickle's BUILD on a placeholder: the state is dropped."""


class _Inert(metaclass=_InertMeta):
    """Stands in for every non-tensor object in a checkpoint's metadata (an argparse Namespace,
    mmengine's HistoryBuffer, numpy arrays, ...). Creating or calling it returns the class itself
    and runs no code, so such files load under weights_only=True, with the weights intact."""

    def __new__(cls, *args: object, **kwargs: object) -> type:
        return cls


@contextmanager
def _inert_metadata(path: str) -> Iterator[None]:
    """While loading `path`, every non-weight global of the file resolves to `_Inert`.

    Process-wide allowlists (coat_backbone.engine registers mmengine's types so that resuming
    works) are set aside meanwhile, so that a weights load never rebuilds metadata objects.
    """
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except (RuntimeError, ValueError, OSError, pickle.UnpicklingError):
            names = []  # not a zip checkpoint: torch.load reports what is wrong with it
        torch.serialization.add_safe_globals(
            [(_Inert, name) for name in names]
            + [(_InertMeta, f'{_InertMeta.__module__}.{_InertMeta.__qualname__}')])
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


def _cached_download(url: str) -> str:
    """The local copy of `url` in torch hub's checkpoint cache, downloaded if it is not there.

    The file is named after a hash of the whole URL as well as its file name: hubs serve many
    models under one name (`pytorch_model.bin`), which must not share a cached file.
    Distributed ranks may download at once on first use: each writes its own temporary file,
    renamed into place when complete, so none reads a partial file.
    """
    try:
        name = osp.basename(urlparse(url).path) or 'checkpoint'
    except ValueError as error:
        raise CheckpointError(f'Checkpoint URL {url} is malformed ({error}).') from error
    url_hash = hashlib.sha256(url.encode()).hexdigest()[:8]
    cached = osp.join(torch.hub.get_dir(), 'checkpoints', f'{url_hash}-{name}')
    if not osp.isfile(cached):
        try:
            os.makedirs(osp.dirname(cached), exist_ok=True)
        except OSError as error:
            raise CheckpointError(
                f'Cannot create torch hub\'s checkpoint cache {osp.dirname(cached)} to download '
                f'{url} into ({error.strerror}). Set TORCH_HOME to a folder you can write, or '
                f'download the file yourself and give its local path.') from error
        print_log(f'Downloading {url} to {cached}', logger='current')
        try:
            torch.hub.download_url_to_file(url, cached)
        except (OSError, ValueError, HTTPException) as error:  # network, HTTP, bad URLs
            raise CheckpointError(
                f'Could not download checkpoint {url} ({error}). Check the address and the '
                f'network, or download the file yourself and give its local path.') from error
    return cached


def check_checkpoint_file(path: str, fix: Optional[str] = None) -> None:
    """Refuse a file that is no torch checkpoint, or a zip-format one cut short, by its bytes:
    torch's own errors for these advise loading the file unsafely (weights_only=False). `fix`
    replaces the advice (a downloaded file: download it again)."""
    with open(path, 'rb') as file:
        head = file.read(4)
    if head == b'PK\x03\x04':  # every torch.save since torch 1.6 writes a zip archive
        if not zipfile.is_zipfile(path):
            raise CheckpointError(f'Checkpoint {path} is truncated or damaged (its zip archive '
                                  f'has no end record); {fix or "copy or download it again"}.')
    elif head[:1] != b'\x80':  # older torch.save files are pickles, protocol 2 or later
        raise CheckpointError(f'{path} is not a PyTorch checkpoint (a torch.save file starts '
                              f'with a zip or pickle header, this one with {head!r}); '
                              f'{fix or "give the .pth file of the weights"}.')


def read_checkpoint(path: Union[str, os.PathLike]) -> dict:
    """Load a checkpoint with `weights_only=True`; metadata objects come back as inert
    placeholders, tensors and plain containers as they are."""
    path = os.fspath(path)
    scheme = re.match(r'(open-?mmlab|torchvision|modelzoo|mmcls|mmpretrain)://', path)
    if scheme:
        # mmseg's ResNet bases set model.pretrained='open-mmlab://resnet50_v1c', which the
        # segmentor hands to the backbone: a model-zoo name, never CoaT weights.
        raise CheckpointError(
            f'{path} names a checkpoint of the {scheme.group(1)} model zoo, not CoaT weights. If '
            f'it comes from an mmseg base config, set model.pretrained=None in your config and '
            f'give CoaT weights in backbone.init_cfg.')
    path = osp.expanduser(path)  # as mmengine's own loader does
    again, download_again = 'download or copy it again', None
    if path.startswith(('http://', 'https://')):
        url, path = path, _cached_download(path)
        again = download_again = f'delete it to download {url} again'
    try:
        with get_local_path(path) as local_path, _inert_metadata(local_path):
            check_checkpoint_file(local_path, download_again)
            return torch.load(local_path, map_location='cpu', weights_only=True)
    except CheckpointError:
        raise
    except FileNotFoundError as error:
        raise CheckpointError(f'Checkpoint not found: {path}. Check the path (official weights go '
                              f'under checkpoints/, see the README).') from error
    except IsADirectoryError as error:
        raise CheckpointError(f'Checkpoint {path} is a directory; give the .pth file in it.'
                              ) from error
    except PermissionError as error:
        raise CheckpointError(f'Checkpoint {path} cannot be read ({error}); fix its permissions '
                              f'or copy it somewhere readable.') from error
    except Exception as error:  # damaged bytes raise anything from IndexError to struct.error
        # Every global of a zip-format file is made inert above, so a refused one means the
        # legacy format, whose globals torch cannot list before loading.
        unsupported = re.search(r'Unsupported global: GLOBAL (\S+)', str(error))
        if unsupported:
            raise CheckpointError(
                f'Checkpoint {path} is in the legacy (pre-1.6, non-zip) torch format and holds a '
                f'{unsupported.group(1)} object besides the weights, which only zip-format files '
                f'may hold. If you trust the file, re-save it with a current torch: '
                f'torch.save(torch.load(path, weights_only=False), new_path).') from error
        if re.search(r'Can only (SETITEMS?|append|extend)', str(error)):
            # Placeholders stand in for unknown objects, but the weights-only loader fills
            # only true dicts and lists: a defaultdict, a deque or a dict or list subclass.
            raise CheckpointError(
                f'Checkpoint {path} holds, besides the weights, a container object (a subclass of '
                f'dict or list, a defaultdict or a deque) that a weights-only load cannot rebuild. '
                f'If you trust the file, re-save its weights alone: torch.save(torch.load(path, '
                f'weights_only=False)[KEY], new_path), KEY being the key that holds the weights.'
            ) from error
        raise CheckpointError(f'Checkpoint {path} is corrupt or truncated ({error}); '
                              f'{again}.') from error


def extract_state_dict(checkpoint: Mapping, prefix: Optional[str] = None,
                       source: str = 'the checkpoint') -> Tuple[StateDict, str]:
    """Unwrap any accepted format into the model's key names.

    Returns the state dict and a short description of what was unwrapped, for the log.
    `prefix` selects the keys under it (e.g. 'backbone.'); by default a detector's or
    segmentor's `backbone.` keys are selected when present. `source` (the file) names it in errors.
    """
    if isinstance(checkpoint, _InertMeta):
        raise CheckpointError(f'Found a pickled object, not weights, in {source} (saved with '
                              f'torch.save(model)?); save model.state_dict() instead.')
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'Expected a dict of tensors or a format around one in {source}, '
                              f'found a {type(checkpoint).__name__}.')
    notes: List[str] = []
    state = checkpoint
    for wrapper in ('state_dict', 'model'):
        if isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
            notes.append(f"'{wrapper}'")
            break
    tensors = OrderedDict((key, value) for key, value in state.items()
                          if isinstance(value, torch.Tensor))
    if not tensors:
        raise CheckpointError(f'No weights found in {source} (top-level keys: '
                              f'{sorted(map(str, checkpoint))[:10]}); a state dict of tensors, '
                              f"alone or under 'state_dict' or 'model', was expected.")
    for wrapper in _WRAPPER_PREFIXES:
        if all(key.startswith(wrapper) for key in tensors):
            tensors = OrderedDict((key[len(wrapper):], value) for key, value in tensors.items())
            notes.append(f"'{wrapper}' prefix")
    if prefix is None and any(key.startswith('backbone.') for key in tensors):
        prefix = 'backbone.'
    if prefix and not prefix.endswith('.'):
        prefix += '.'  # as mmengine's Pretrained loader reads prefix='backbone'
    if prefix:
        selected = OrderedDict((key[len(prefix):], value) for key, value in tensors.items()
                               if key.startswith(prefix))
        if not selected:
            raise CheckpointError(f"No key of {source} starts with prefix '{prefix}'.")
        skipped = len(tensors) - len(selected)
        notes.append(f"'{prefix}' keys" + (f' ({skipped} other keys skipped)' if skipped else ''))
        tensors = selected
    return tensors, ', '.join(notes) or 'bare state dict'


def _alias_groups(model: nn.Module) -> List[List[str]]:
    """Names under which each shared tensor appears in the model's state dict."""
    groups: Dict[int, List[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(tensor), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal shapes and values, NaN equal to NaN (the copies of a diverged run's weights agree)."""
    return a.shape == b.shape and torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)


def _mlp_ratio(hidden: int, dim: int) -> Union[int, float]:
    """The mlp_ratio for which CoaT's `int(dim * mlp_ratio)` gives `hidden` back."""
    ratio = hidden / dim
    while int(dim * ratio) < hidden:  # hidden / dim can round below the value it came from
        ratio = math.nextafter(ratio, math.inf)
    return int(ratio) if float(ratio).is_integer() else ratio


def arch_settings_of(state_dict: Mapping[str, torch.Tensor]) -> Optional[dict]:
    """The settings (the dict `CoaT(arch=...)` takes) that a CoaT state dict's shapes and depths
    give, or None when it is not a CoaT's."""
    from .coat import CRPE_WINDOWS  # coat.py imports this module: import here to avoid a cycle
    try:
        embed_dims = [state_dict[f'cls_token{i}'].shape[-1] for i in range(1, 5)]
        hidden = [state_dict[f'serial_blocks{i}.0.mlp.fc1.weight'].shape[0] for i in range(1, 5)]
    except KeyError:
        return None
    depths = [len({key.split('.')[1] for key in state_dict
                   if key.startswith(f'serial_blocks{i}.')}) for i in range(1, 5)]
    parallel = len({key.split('.')[1] for key in state_dict if key.startswith('parallel_blocks.')})
    return dict(embed_dims=embed_dims, serial_depths=depths, parallel_depth=parallel,
                num_heads=sum(CRPE_WINDOWS.values()),
                mlp_ratios=[_mlp_ratio(h, d) for h, d in zip(hidden, embed_dims)])


def _arch_named(settings: Optional[dict]) -> Optional[Union[str, dict]]:
    """The published variant with exactly these settings (from `arch_settings_of`) by its name,
    else the settings themselves."""
    from .coat import ARCH_SETTINGS
    for name, published in ARCH_SETTINGS.items():
        if settings == {key: list(value) if isinstance(value, tuple) else value
                        for key, value in published.items()}:
            return name
    return settings


def arch_of(state_dict: Mapping[str, torch.Tensor]) -> Optional[Union[str, dict]]:
    """A CoaT state dict's arch: its published variant's name, else the dict of its settings
    (None when it is not a CoaT's)."""
    return _arch_named(arch_settings_of(state_dict))


def _listing(keys: List[str], limit: int = 8) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f' ... ({len(keys)} in all)' if len(keys) > limit else '')


def _hint(mismatched: List[str], state_dict: StateDict, expected: StateDict) -> str:
    """What the problems most likely mean: another arch, another class count, or another
    number of input channels."""
    theirs = arch_settings_of(state_dict)
    if theirs is not None and theirs != arch_settings_of(expected):
        return (f' The checkpoint is CoaT arch={_arch_named(theirs)!r}; build the model with '
                f'that arch.')
    if mismatched and all(key.startswith('head.') for key in mismatched):
        classes = state_dict['head.weight'].shape[0]
        return (f' The checkpoint\'s head has {classes} classes and the model '
                f'{expected["head.weight"].shape[0]}: build it with num_classes={classes}, or '
                f'fine-tune a new head with init_cfg=dict(type=\'Pretrained\', checkpoint=..., '
                f'new_head=True).')
    if 'patch_embed1.proj.weight' in mismatched:  # the same arch: only the channels differ
        channels = state_dict['patch_embed1.proj.weight'].shape[1]
        return f' The checkpoint takes {channels} input channels: build the model with ' \
               f'in_channels={channels}.'
    if mismatched and theirs is None:
        return ' Is it another model?'
    return ''


def match_state_dict(model: nn.Module, state_dict: StateDict, new_head: bool = False
                     ) -> Tuple[StateDict, List[str]]:
    """Fit `state_dict` to `model`'s keys or raise `CheckpointError` saying exactly why not.

    Keys the model declares as ignorable (`ignored_checkpoint_prefixes`, e.g. the classification
    head in dense mode), and with `new_head` the classifier's `head`, are dropped and returned;
    aliases of shared modules missing from the file are filled from the alias that is present,
    and aliases present in it must hold the same values.
    """
    ignored_prefixes = tuple(getattr(model, 'ignored_checkpoint_prefixes', ()))
    if new_head:
        ignored_prefixes += ('head.',)
    # The file's own keys, for the hint: filled aliases would give a shallower file the model's
    # depths.
    as_given = state_dict
    dropped = [key for key in state_dict if key.startswith(ignored_prefixes)]
    state_dict = OrderedDict((key, value) for key, value in state_dict.items()
                             if not key.startswith(ignored_prefixes))
    conflicts = []
    for names in _alias_groups(model):
        present = [name for name in names if name in state_dict]
        # One module in CoaT: loading would silently keep whichever copy comes last.
        conflicts += [f'{present[0]} vs {name}' for name in present[1:]
                      if not _same_values(state_dict[name], state_dict[present[0]])]
        for name in names:
            if present and name not in state_dict:
                state_dict[name] = state_dict[present[0]]

    expected = model.state_dict()
    if new_head:
        expected = OrderedDict((key, value) for key, value in expected.items()
                               if not key.startswith('head.'))
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    mismatched = [key for key in expected if key in state_dict
                  and state_dict[key].shape != expected[key].shape]
    problems = []
    if conflicts:
        problems.append(f'{len(conflicts)} weights that CoaT shares between blocks differ between '
                        f'their copies in the checkpoint: {_listing(conflicts, 4)}. It was '
                        f'edited, or comes from a model that does not share them.')
    if mismatched:
        shapes = [f'{key}: checkpoint {tuple(state_dict[key].shape)} vs model '
                  f'{tuple(expected[key].shape)}' for key in mismatched]
        problems.append(f'{len(mismatched)} shape mismatches: {_listing(shapes, 4)}.')
    if missing:
        problems.append(f'{len(missing)} model keys missing from the checkpoint: '
                        f'{_listing(missing)}.')
    if unexpected:
        problems.append(f'{len(unexpected)} checkpoint keys the model does not have: '
                        f'{_listing(unexpected)}.')
    if problems:
        raise CheckpointError(' '.join(problems) + _hint(mismatched, as_given, expected))
    return state_dict, dropped


def load_coat_checkpoint(model: nn.Module, path: Union[str, os.PathLike],
                         prefix: Optional[str] = None, new_head: bool = False) -> None:
    """Read `path` in any accepted format and load it into `model` strictly (all or nothing).
    `new_head`: keep a classifier's own (new) `head` instead of the file's, to fine-tune to
    another class count."""
    path = os.fspath(path)
    state_dict, unwrapped = extract_state_dict(read_checkpoint(path), prefix, source=path)
    load_matched(model, state_dict, f'{path} ({unwrapped})', type(model).__name__, new_head)


def load_matched(model: nn.Module, state_dict: StateDict, source: str, target: str,
                 new_head: bool = False) -> None:
    """Load `state_dict` into `model` strictly, after `match_state_dict`, and log what was loaded
    and dropped; `source` and `target` name the weights and the model in messages."""
    try:
        matched, dropped = match_state_dict(model, state_dict, new_head)
    except CheckpointError as error:
        raise CheckpointError(f'Cannot load {source} into {target}: {error}') from None
    model.load_state_dict(matched, strict=not new_head)
    message = f'Loaded {source} into {target}'
    if new_head:
        dropped = [key for key in dropped if not key.startswith('head.')]
        message += "; the head is the model's own, newly initialised (new_head=True)"
    if dropped:
        heads = sorted({key.split('.')[0] for key in dropped})
        message += f'; dropped {len(dropped)} keys the model does not use: {", ".join(heads)}'
    print_log(message, logger='current')
