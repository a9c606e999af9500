"""Models as the command-line tools take them: a variant name, a checkpoint (whose variant is read
from its weights) or a detection / segmentation config (its backbone only)."""
import argparse
import ast
from typing import Optional, Union

from mmengine.config import Config
from mmengine.registry import MODELS

from .checkpoint import extract_state_dict, infer_arch, load_coat_checkpoint, read_checkpoint
from .coat import CoaT, CoaTClassifier


def parse_arch(text: str) -> Union[str, dict]:
    """A command line's arch: a variant name, or a dict literal of its settings
    (`"{'embed_dims': [16, 32, 32, 32], ...}"`, the keys `CoaT` takes); an argparse `type`."""
    if not text.lstrip().startswith('{'):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as error:
        raise argparse.ArgumentTypeError(f'Cannot read the arch dict {text!r} ({error}); '
                                         f'write it as a Python dict literal.') from None


def backbone_from_config(config: str) -> CoaT:
    """The CoaT of `config`'s `model.backbone`, without its pretrained weights (init_cfg and
    pretrained removed): what a detector or segmentor built from the config runs."""
    cfg = Config.fromfile(config)
    backbone = cfg.get('model', {}).get('backbone')
    if backbone is None:
        raise ValueError(f'{config} has no model.backbone; give a detection or segmentation '
                         f'config with a CoaT backbone.')
    backbone = backbone.copy()
    if not str(backbone.get('type', '')).endswith('CoaT'):
        raise ValueError(f"{config}'s backbone is {backbone.get('type')!r}, not CoaT.")
    backbone.pop('init_cfg', None)
    backbone.pop('pretrained', None)
    return MODELS.build(backbone)


def build_model(arch: Optional[Union[str, dict]] = None, checkpoint: Optional[str] = None,
                config: Optional[str] = None, classifier: bool = False) -> CoaT:
    """A CoaT backbone (or, with `classifier`, a CoaTClassifier), in eval mode.

    Exactly one of `arch`, `config` and `checkpoint` decides the architecture; a checkpoint's
    variant is inferred from its weights unless `arch` or `config` is given. The checkpoint's
    weights are loaded strictly (any format `coat_backbone.checkpoint` accepts); without one the
    weights are random (initialised as the official model).
    """
    if config is not None:
        if arch is not None or classifier:
            raise ValueError('A config gives the backbone; do not combine it with an arch or '
                             'the classifier.')
        model = backbone_from_config(config)
    else:
        num_classes = 1000
        if checkpoint is not None:
            state_dict, _ = extract_state_dict(read_checkpoint(checkpoint))
            arch = arch or infer_arch(state_dict)
            if arch is None:
                raise ValueError(f'The weights of {checkpoint} are not a published CoaT variant; '
                                 f'give the arch explicitly.')
            if classifier and 'head.weight' in state_dict:
                num_classes = state_dict['head.weight'].shape[0]
        if arch is None:
            raise ValueError('Give an arch, a checkpoint or a config.')
        model = CoaTClassifier(arch, num_classes=num_classes) if classifier else CoaT(arch)
    if checkpoint is not None:
        load_coat_checkpoint(model, checkpoint)
    return model.eval()
