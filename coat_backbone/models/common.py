"""What the backbones of this project (CoaT, CoAtNet) share: argument checks with the same error
style, `init_cfg` / `pretrained` handled by the project's checkpoint loader, and the freezing
bookkeeping re-applied on `train()`.

A backbone derives from `DenseBackbone`, names its family in `arch_family` (messages and
checkpoint errors say 'CoaT' or 'CoAtNet') and freezes what does not train in `_freeze_stages`
(with `freeze`), which `train()` re-applies.
"""
from abc import abstractmethod
from numbers import Integral, Real
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.model import BaseModule

from ..checkpoint import load_coat_checkpoint


def is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def as_list(values: Any) -> Any:
    """numpy arrays and tensors as lists of Python numbers; anything else as it is."""
    return values.tolist() if hasattr(values, 'tolist') else values


def check_out_indices(out_indices: Union[int, Sequence[int]]) -> Tuple[int, ...]:
    """Validated out_indices, sorted from high to low resolution."""
    indices = (out_indices, ) if is_int(out_indices) else as_list(out_indices)
    if not (isinstance(indices, Sequence) and indices and len(set(indices)) == len(indices)
            and all(is_int(i) and 0 <= i <= 3 for i in indices)):
        raise ValueError(f'out_indices={out_indices!r} is invalid: give distinct ints from 0-3 '
                         f'(strides 4, 8, 16, 32), e.g. (0, 1, 2, 3).')
    return tuple(sorted(int(i) for i in indices))


def check_drop_path_rate(drop_path_rate: Any) -> None:
    if not (isinstance(drop_path_rate, Real) and 0 <= drop_path_rate < 1):
        raise ValueError(f'drop_path_rate={drop_path_rate!r}: use a probability in [0, 1), '
                         f'e.g. 0.1.')


def check_frozen_stages(frozen_stages: Any, meaning: str) -> None:
    """frozen_stages must be an int from -1 to 4; `meaning` says what the values freeze."""
    if not (is_int(frozen_stages) and -1 <= frozen_stages <= 4):
        raise ValueError(f'frozen_stages={frozen_stages!r} is out of range: use an int, '
                         f'{meaning}.')


def refuse_unexpected(family: str, unexpected: Dict[str, Any]) -> None:
    """Refuse keyword arguments the backbone does not take, naming them: mostly another
    backbone's settings merged in from a base config that needs `_delete_=True`."""
    if unexpected:
        raise TypeError(
            f'{family} takes no {", ".join(sorted(unexpected))}. If your config\'s backbone '
            f'inherits another backbone from a base config (mmdet\'s and mmseg\'s ResNet '
            f'bases set depth, num_stages, style, ...), those settings were merged into '
            f'{family}\'s: replace them with backbone=dict(_delete_=True, type=\'{family}\', ...).')


def pretrained_as_init_cfg(family: str, pretrained: Optional[str],
                           init_cfg: Optional[Union[dict, List[dict]]]
                           ) -> Optional[Union[dict, List[dict]]]:
    """mmseg's `pretrained=PATH` as `init_cfg=dict(type='Pretrained', checkpoint=PATH)`."""
    if pretrained is None:
        return init_cfg
    if init_cfg is not None:
        raise ValueError(
            f'{family} got both pretrained={pretrained!r} and init_cfg; set only one of them. '
            f'mmseg segmentors pass the config\'s model.pretrained (set by mmseg\'s ResNet '
            f'bases) to the backbone: set model.pretrained=None to use init_cfg.')
    return dict(type='Pretrained', checkpoint=pretrained)


def freeze(modules: List[nn.Module]) -> None:
    """Eval mode (drop path and dropout off, BatchNorm statistics kept) and no gradients."""
    for module in modules:
        module.eval()
        for param in module.parameters():
            param.requires_grad = False


class DenseBackbone(BaseModule):
    """A backbone whose `init_cfg=dict(type='Pretrained', checkpoint=...)` loads through
    `coat_backbone.checkpoint` (every format and Hub name it reads, strictly), and whose frozen
    and idle modules stay so after `.train()`."""

    arch_family = ''

    def init_weights(self) -> None:
        """Load `init_cfg=dict(type='Pretrained', checkpoint=...)` (alone or in a list) with the
        project's loader, which understands every checkpoint format the weights come in; other
        init_cfgs go to mmengine first, and the checkpoint overwrites them, as in mmengine."""
        family = self.arch_family
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        pretrained = [cfg for cfg in cfgs if isinstance(cfg, dict)
                      and cfg.get('type') == 'Pretrained']
        if not pretrained:
            super().init_weights()
            return
        if len(pretrained) > 1:
            raise ValueError(f'{family} init_cfg has {len(pretrained)} Pretrained entries; '
                             f'give one.')
        others = [cfg for cfg in cfgs if cfg is not pretrained[0]]
        if others:
            self.init_cfg = others
            try:
                super().init_weights()
            finally:
                self.init_cfg = cfgs
        cfg = pretrained[0]
        if not cfg.get('checkpoint'):
            raise ValueError(f"{family} init_cfg dict(type='Pretrained') has no checkpoint: add "
                             f"checkpoint='path/to/weights.pth'.")
        load_coat_checkpoint(self, cfg['checkpoint'], prefix=cfg.get('prefix'),
                             new_head=cfg.get('new_head', False))
        self._is_init = True

    @abstractmethod
    def _freeze_stages(self) -> None:
        """Put what does not train (frozen and idle modules) in eval mode, without gradients."""

    def train(self, mode: bool = True) -> 'DenseBackbone':
        super().train(mode)
        self._freeze_stages()  # keep frozen stages in eval mode (drop path off) after .train()
        return self
