"""The ImageNet training model: `CoaTClassifier` plus the recipe's batch mixing and loss."""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy


@MODELS.register_module()
class CoaTImageClassifier(BaseModel):
    """Trains a `CoaTClassifier` with timm's Mixup/CutMix and the matching loss, as the official
    recipe does (DeiT's training code).

    The network is the attribute `backbone`, so the checkpoints this model writes hold
    `backbone.<official key>`: the detection and segmentation `CoaT` backbones load them through
    `init_cfg=dict(type='Pretrained', checkpoint=...)` unchanged (the head is dropped there), and
    `coat_backbone.load_coat_checkpoint` loads them into a `CoaTClassifier`.

    Args:
        backbone: config of the network, `dict(type='CoaTClassifier', arch=..., num_classes=...)`.
        mixup: keyword arguments of `timm.data.Mixup` (e.g. mixup_alpha, cutmix_alpha, prob,
            switch_prob, mode), or None for no batch mixing. Its label smoothing and class count
            come from `label_smoothing` and the backbone. Needs even training batches.
        label_smoothing: smoothing of the targets (inside Mixup's soft targets when mixing).
        data_preprocessor: mmengine's data preprocessor config; the default moves batches to the
            device (images come normalised from the timm transform).
        init_cfg: mmengine initialisation config of the whole model.
    """

    def __init__(self,
                 backbone: dict,
                 mixup: Optional[dict] = None,
                 label_smoothing: float = 0.0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        num_classes = self.backbone.num_classes
        self.mixup = (Mixup(**mixup, label_smoothing=label_smoothing, num_classes=num_classes)
                      if mixup else None)
        # The criterion the official training picks for these settings.
        if self.mixup is not None:
            self.criterion: nn.Module = SoftTargetCrossEntropy()
        elif label_smoothing > 0:
            self.criterion = LabelSmoothingCrossEntropy(smoothing=label_smoothing)
        else:
            self.criterion = nn.CrossEntropyLoss()

    def forward(self,
                inputs: torch.Tensor,
                targets: Optional[torch.Tensor] = None,
                mode: str = 'tensor') -> Union[torch.Tensor, Dict[str, torch.Tensor], List[dict]]:
        """mode 'tensor': logits; 'loss': `{'loss': ...}` (with batch mixing); 'predict': one
        `{'pred_score': logits, 'gt_label': target}` per image, for `TopKAccuracy`."""
        if mode == 'tensor':
            return self.backbone(inputs)
        if mode == 'loss':
            if targets is None:
                raise ValueError('mode="loss" needs the class targets of the batch.')
            if self.mixup is not None:
                inputs, targets = self.mixup(inputs, targets)
            return dict(loss=self.criterion(self.backbone(inputs), targets))
        if mode == 'predict':
            logits = self.backbone(inputs)
            labels = targets if targets is not None else [None] * len(logits)
            return [dict(pred_score=score, gt_label=label) for score, label in zip(logits, labels)]
        raise ValueError(f'Unknown mode {mode!r}: use "tensor", "loss" or "predict".')
