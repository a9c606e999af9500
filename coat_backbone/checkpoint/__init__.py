"""Checkpoints: where they come from (`remote`: URLs and Hugging Face Hub names), reading them
without running code (`reading`: torch files and safetensors), and fitting them to a model
strictly (`loading`). Every failure is a `CheckpointError` that names the cause and the fix.

Importing it registers `hf-hub:` names with mmengine's `CheckpointLoader`, so a config's
`load_from='hf-hub:ORG/REPO'` (a whole detector or segmentor published on the Hub) and mmengine's
own `Pretrained` init read them too.
"""
from mmengine.runner import CheckpointLoader

from .errors import CheckpointError
from .loading import (StateDict, extract_state_dict, load_coat_checkpoint, load_matched,
                      match_state_dict)
from .reading import check_checkpoint_file, read_checkpoint
from .remote import HUB_PREFIX, is_remote, local_copy


@CheckpointLoader.register_scheme(prefixes=HUB_PREFIX)
def load_from_hf_hub(filename: str, map_location=None) -> dict:
    """mmengine's loader for `hf-hub:` names (its log calls it the `hf_hub` backend). The file
    is read like every checkpoint here, weights-only; the tensors are on the CPU."""
    return read_checkpoint(filename)


__all__ = [
    'CheckpointError', 'HUB_PREFIX', 'StateDict', 'check_checkpoint_file', 'extract_state_dict',
    'is_remote', 'load_coat_checkpoint', 'load_matched', 'local_copy', 'match_state_dict',
    'read_checkpoint'
]
