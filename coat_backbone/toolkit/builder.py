"""Models as the command-line tools take them: a variant name, a checkpoint (whose variant is read
from its weights) or a detection / segmentation config (its backbone only).

CoaT is every tool's; a tool that also takes CoAtNet says so with `families`."""
import argparse
import ast
from typing import Dict, Optional, Sequence, Tuple, Union

from mmengine.config import Config
from mmengine.registry import MODELS

from ..checkpoint import (CheckpointError, StateDict, extract_state_dict, load_coat_checkpoint,
                          load_matched, read_checkpoint)
from ..models.coat import CoaT, CoaTClassifier, arch_of, grid_sizes
from ..models.coatnet import CoAtNet, CoAtNetClassifier

# The backbone and classifier of each family, by the backbone's registered name.
BACKBONES: Dict[str, Tuple[type, type]] = {'CoaT': (CoaT, CoaTClassifier),
                                           'CoAtNet': (CoAtNet, CoAtNetClassifier)}


def family_of(arch: Union[str, dict]) -> str:
    """'CoAtNet' for a timm CoAtNet name (coatnet_...) or a dict with a `style`, else 'CoaT'."""
    if isinstance(arch, str):
        return 'CoAtNet' if arch.startswith('coatnet') else 'CoaT'
    return 'CoAtNet' if isinstance(arch, dict) and 'style' in arch else 'CoaT'


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


def input_size(sides: Optional[Sequence[int]], classifier: bool,
               option: str = '--shape') -> Tuple[int, int]:
    """A tool's size option as (height, width): one value is a square; without one, 224 for the
    classifier, else mmdet's test scale 800x1333. Raises ValueError naming `option`."""
    if sides is None:
        return (224, 224) if classifier else (800, 1333)
    if len(sides) not in (1, 2):
        raise ValueError(f'{option} takes one (square) or two (height width) values')
    size = (sides[0], sides[-1])
    try:
        grid_sizes(*size)
    except ValueError as error:
        raise ValueError(f'{option} {" ".join(map(str, sides))}: {error}') from None
    return size


def backbone_from_config(config: str, families: Sequence[str] = ('CoaT', )) -> CoaT:
    """The backbone of `config`'s `model.backbone` (of one of `families`), without its pretrained
    weights (init_cfg and pretrained removed): what a detector or segmentor built from the config
    runs."""
    cfg = Config.fromfile(config)
    backbone = cfg.get('model', {}).get('backbone')
    wanted = ' or '.join(families)
    if backbone is None:
        raise ValueError(f'{config} has no model.backbone; give a detection or segmentation '
                         f'config with a {wanted} backbone.')
    backbone = backbone.copy()
    kind = str(backbone.get('type', ''))
    for family in families:
        if kind.endswith(f'{family}Classifier'):
            arch = backbone.get('arch')
            raise ValueError(f"{config} is an ImageNet classifier's config ({family}Classifier); "
                             f"give its arch instead: --arch {repr(arch) if arch else 'NAME'}, "
                             f"with --classifier to count or export the classifier.")
    if not any(kind.endswith(family) for family in families):
        raise ValueError(f"{config}'s backbone is {backbone.get('type')!r}, not {wanted}.")
    backbone.pop('init_cfg', None)
    backbone.pop('pretrained', None)
    return MODELS.build(backbone)


def model_from_state_dict(state_dict: StateDict, source: str,
                          arch: Optional[Union[str, dict]] = None, classifier: bool = False
                          ) -> CoaT:
    """A CoaT, or with `classifier` a CoaTClassifier with the checkpoint's class count, holding
    `state_dict` (loaded strictly, logged). `arch` defaults to the one the weights' shapes give
    (`arch_of`); `source` names the weights in messages."""
    if classifier and 'head.weight' not in state_dict:
        raise CheckpointError(f'{source} has no classification head (head.weight): it is a '
                              f'backbone or detector checkpoint, which cannot classify; use it '
                              f'as a backbone (CoaT).')
    arch = arch or arch_of(state_dict)
    if arch is None:
        raise CheckpointError(f'{source} holds no CoaT weights (no cls_token1-4 or '
                              f'serial_blocks1-4): it is another model\'s checkpoint.')
    if classifier:
        model = CoaTClassifier(arch, num_classes=state_dict['head.weight'].shape[0])
    else:
        model = CoaT(arch)
    load_matched(model, state_dict, source, f'{type(model).__name__}(arch={arch!r})')
    return model


def build_model(arch: Optional[Union[str, dict]] = None, checkpoint: Optional[str] = None,
                config: Optional[str] = None, classifier: bool = False,
                families: Sequence[str] = ('CoaT', )) -> CoaT:
    """A CoaT backbone (or, with `classifier`, a CoaTClassifier), in eval mode; a CoAtNet one
    from an arch or config too where `families` names it.

    Exactly one of `arch`, `config` and `checkpoint` decides the architecture; a checkpoint's
    arch is read from its weights unless `arch` or `config` is given. The checkpoint's
    weights are loaded strictly (any format `coat_backbone.checkpoint` accepts); without one the
    weights are random (initialised as the official model).
    """
    if config is not None:
        if arch is not None or classifier:
            raise ValueError('A config gives the backbone; do not combine it with an arch or '
                             'the classifier.')
        model = backbone_from_config(config, families)
        if checkpoint is not None:
            load_coat_checkpoint(model, checkpoint)
    elif checkpoint is not None:
        state_dict, unwrapped = extract_state_dict(read_checkpoint(checkpoint),
                                                   source=checkpoint)
        model = model_from_state_dict(state_dict, f'{checkpoint} ({unwrapped})', arch, classifier)
    elif arch is not None:
        family = family_of(arch) if family_of(arch) in families else 'CoaT'
        backbone_class, classifier_class = BACKBONES[family]
        model = classifier_class(arch) if classifier else backbone_class(arch)
    else:
        raise ValueError('Give an arch, a checkpoint or a config.')
    return model.eval()
