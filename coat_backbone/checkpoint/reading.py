"""Reading a checkpoint into a dict without running anything stored in it.

Two file formats, told apart by their first bytes rather than their names:
- `torch.save` files, zip (torch 1.6 and later) or the older pickle. They are unpickled by a
  restricted unpickler: the globals PyTorch's own weights-only loader allows (tensor rebuilding,
  storages, dtypes, plain containers) resolve as usual, and every other global (an argparse
  Namespace, mmengine's log buffers, numpy arrays, a pickled model, a payload that would run code)
  resolves to an inert placeholder that runs no code and absorbs whatever pickle does with it. The
  weights come back intact and the metadata as placeholders, on every supported torch (the
  safe-globals API of torch 2.4-2.5 is not needed).
- safetensors files, which hold nothing but tensors. A tensor shared by several modules is stored
  once there; `loading.match_state_dict` fills the other names.
Paths may be local (`~` expanded, as mmengine does; mmengine's file backends apply), http(s) URLs
or Hub names (`remote`).
"""
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, BinaryIO, Optional, Union

import torch
from mmengine.fileio import get_local_path

from .errors import CheckpointError
from .remote import is_remote, local_copy

_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = b'\x80'  # torch.save's legacy format: a pickle, protocol 2 or later
# safetensors: an 8-byte little-endian header length, then the JSON header.
_SAFETENSORS_HEADER = 8
_MODEL_ZOO = re.compile(r'(open-?mmlab|torchvision|modelzoo|mmcls|mmpretrain)://')


class _InertMeta(type):
    """What pickle may do to a placeholder, done to nothing."""

    def __setstate__(cls, state: object) -> None:  # BUILD
        pass

    def __setitem__(cls, key: object, value: object) -> None:  # SETITEM(S) of a dict subclass
        pass


class _Inert(metaclass=_InertMeta):
    """Stands in for every object of a checkpoint that is not weights. Creating or calling it
    returns the class itself, and filling it (as a list, a dict or through its state) keeps
    nothing, so a file of any content loads with its weights intact."""

    def __new__(cls, *args: object, **kwargs: object) -> type:
        return cls

    @classmethod
    def append(cls, item: object) -> None:  # APPEND(S) of a list subclass or a deque
        pass

    @classmethod
    def extend(cls, items: object) -> None:
        pass


def _weights_globals() -> dict:
    """`module.name` -> object for what PyTorch's weights-only loader itself allows."""
    from torch._weights_only_unpickler import _get_allowed_globals
    return _get_allowed_globals()


class _WeightsUnpickler(pickle.Unpickler):
    """An unpickler whose globals are PyTorch's weights-only allowlist, anything else `_Inert`.
    Only allowlisted objects can be called, so no code from the file runs."""

    def find_class(self, module: str, name: str) -> Any:
        return _WEIGHTS_GLOBALS.get(f'{module}.{name}', _Inert)


class _WeightsPickle:
    """The pickle module `torch.load` is given: its Unpickler and load are the restricted ones."""
    Unpickler = _WeightsUnpickler

    @staticmethod
    def load(file: BinaryIO, **kwargs: Any) -> Any:
        return _WeightsUnpickler(file, **kwargs).load()


_WEIGHTS_GLOBALS = _weights_globals()


def is_placeholder(value: object) -> bool:
    """Whether `value` is what an unpickled non-weight object became (see `_Inert`)."""
    return isinstance(value, _InertMeta)


def check_checkpoint_file(path: str, fix: Optional[str] = None) -> str:
    """The format of a checkpoint file, 'torch' or 'safetensors', by its first bytes. A file of
    neither format, or one cut short where that can be seen cheaply, is refused (torch's own
    errors for these advise loading the file unsafely). `fix` replaces the advice (a downloaded
    file: download it again)."""
    with open(path, 'rb') as file:
        head = file.read(_SAFETENSORS_HEADER + 1)
    again = fix or 'copy or download it again'
    if head[:4] == _ZIP_MAGIC:
        if not zipfile.is_zipfile(path):
            raise CheckpointError(f'Checkpoint {path} is truncated or damaged (its zip archive '
                                  f'has no end record); {again}.')
        return 'torch'
    if head[:1] == _PICKLE_PROTO:
        return 'torch'
    header_size = int.from_bytes(head[:_SAFETENSORS_HEADER], 'little')
    if len(head) > _SAFETENSORS_HEADER and head[_SAFETENSORS_HEADER:] == b'{':
        if _SAFETENSORS_HEADER + header_size > osp.getsize(path):
            raise CheckpointError(f'Checkpoint {path} is truncated (its safetensors header '
                                  f'reaches past the end of the file); {again}.')
        return 'safetensors'
    raise CheckpointError(f'{path} is not a PyTorch checkpoint (a torch.save file starts with a '
                          f'zip or pickle header, a safetensors file with its header length and '
                          f"'{{', this one with {head[:4]!r}); "
                          f'{fix or "give the .pth or .safetensors file of the weights"}.')


def _read_file(path: str, fix: Optional[str]) -> Any:
    if check_checkpoint_file(path, fix) == 'safetensors':
        from safetensors.torch import load_file
        return load_file(path, device='cpu')
    return torch.load(path, map_location='cpu', pickle_module=_WeightsPickle, weights_only=False)


def read_checkpoint(path: Union[str, os.PathLike]) -> Any:
    """The content of a checkpoint file, URL or Hub name: tensors and plain containers as they
    were saved, any other object as an inert placeholder (`is_placeholder`)."""
    path = os.fspath(path)
    scheme = _MODEL_ZOO.match(path)
    if scheme:
        # mmseg's ResNet bases set model.pretrained='open-mmlab://resnet50_v1c', which the
        # segmentor hands to the backbone: a model-zoo name, never CoaT weights.
        raise CheckpointError(
            f'{path} names a checkpoint of the {scheme.group(1)} model zoo, not CoaT weights. If '
            f'it comes from an mmseg base config, set model.pretrained=None in your config and '
            f'give CoaT weights in backbone.init_cfg.')
    fix = None  # how to get a good copy of a damaged download
    if is_remote(path):
        fix = f'delete it to download {path} again'
        path = local_copy(path)
    else:
        path = osp.expanduser(path)  # as mmengine's own loader does
    try:
        with get_local_path(path) as local_path:
            return _read_file(local_path, fix)
    except CheckpointError:
        raise
    except FileNotFoundError as error:
        raise CheckpointError(f'Checkpoint not found: {path}. Check the path, or name published '
                              f'weights by their Hub name (hf-hub:timm/coat_small.in1k).'
                              ) from error
    except IsADirectoryError as error:
        raise CheckpointError(f'Checkpoint {path} is a directory; give the .pth or .safetensors '
                              f'file in it.') from error
    except PermissionError as error:
        raise CheckpointError(f'Checkpoint {path} cannot be read ({error}); fix its permissions '
                              f'or copy it somewhere readable.') from error
    except Exception as error:  # damaged bytes raise anything from IndexError to struct.error
        raise CheckpointError(f'Checkpoint {path} is corrupt or truncated ({error}); '
                              f'{fix or "download or copy it again"}.') from error
