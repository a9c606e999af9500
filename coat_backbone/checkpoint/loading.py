"""Fitting a checkpoint's weights to a model: unwrapping every format they come in, and loading
them strictly.

Accepted contents (read by `reading.read_checkpoint`):
- official classification checkpoints: `{'model': state_dict, ...}` (training files also hold
  optimizer, lr_scheduler, epoch, model_ema and an argparse `args`);
- timm weights: a bare state dict with the official key names, in a .pth or .safetensors file;
- mmengine / mmdet / mmseg files: `{'state_dict': ..., 'meta': ...}`, backbone keys prefixed with
  `backbone.` (the rest of the detector is dropped), including official mmdet 2.x CoaT detectors;
- any of these with DataParallel's `module.` prefix.
Loading is all or nothing: another variant's weights, missing keys or foreign keys raise
`CheckpointError` naming them. What a model family knows of its own checkpoints it says through
attributes of the model (`ignored_checkpoint_prefixes`, `arch_of_weights`, `arch_family`,
`input_weight_key`), so that this module needs no network's code.
"""
import os
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log

from .errors import CheckpointError
from .reading import is_placeholder, read_checkpoint

StateDict = Dict[str, torch.Tensor]

_WRAPPER_PREFIXES = ('module.',)


def extract_state_dict(checkpoint: Mapping, prefix: Optional[str] = None,
                       source: str = 'the checkpoint') -> Tuple[StateDict, str]:
    """Unwrap any accepted format into the model's key names.

    Returns the state dict and a short description of what was unwrapped, for the log.
    `prefix` selects the keys under it (e.g. 'backbone.'); by default a detector's or
    segmentor's `backbone.` keys are selected when present. `source` (the file) names it in errors.
    """
    if is_placeholder(checkpoint):
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


def _listing(keys: List[str], limit: int = 8) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f' ... ({len(keys)} in all)' if len(keys) > limit else '')


def _hint(model: nn.Module, mismatched: List[str], state_dict: StateDict,
          expected: StateDict) -> str:
    """What the problems most likely mean: another arch, another class count, or another
    number of input channels. The model's family reads an arch from weights (`arch_of_weights`)."""
    arch_of = getattr(model, 'arch_of_weights', None)
    theirs = arch_of(state_dict) if arch_of else None
    if theirs is not None and theirs != arch_of(expected):
        return (f' The checkpoint is {model.arch_family} arch={theirs!r}; build the model with '
                f'that arch.')
    # The classifier's weight matrix: `head.weight` in CoaT, `head.fc.weight` in timm's heads.
    weight = next((key for key in mismatched if key.startswith('head.')
                   and state_dict[key].dim() == 2), None)
    if weight and all(key.startswith('head.') for key in mismatched):
        classes = state_dict[weight].shape[0]
        return (f' The checkpoint\'s head has {classes} classes and the model '
                f'{expected[weight].shape[0]}: build it with num_classes={classes}, or '
                f'fine-tune a new head with init_cfg=dict(type=\'Pretrained\', checkpoint=..., '
                f'new_head=True).')
    stem = getattr(model, 'input_weight_key', None)
    if stem in mismatched:  # the same arch: only the channels differ
        channels = state_dict[stem].shape[1]
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
        raise CheckpointError(' '.join(problems) + _hint(model, mismatched, as_given, expected))
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
