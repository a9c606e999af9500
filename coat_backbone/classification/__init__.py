"""ImageNet pretraining and evaluation of CoaT on mmengine's Runner (tools/train_cls.py,
tools/eval_cls.py, configs/imagenet/).

Importing it registers, in mmengine's root registries (so configs need no scope prefix):
`ImageFolderDataset` (DATASETS), `RepeatAugSampler` (DATA_SAMPLERS), `CoaTImageClassifier`
(MODELS) and `TopKAccuracy` (METRICS).
"""
from .data import ImageFolderDataset, RepeatAugSampler
from .evaluation import (eval_transform, evaluate_folder, load_classifier, raw_weights,
                         settings_from_config)
from .metric import TopKAccuracy
from .model import CoaTImageClassifier

__all__ = [
    'CoaTImageClassifier', 'ImageFolderDataset', 'RepeatAugSampler', 'TopKAccuracy',
    'eval_transform', 'evaluate_folder', 'load_classifier', 'raw_weights', 'settings_from_config'
]
