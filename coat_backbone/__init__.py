"""coat-backbone: the CoaT backbone (Co-Scale Conv-Attentional Image Transformers, ICCV 2021) and
CoAtNet (NeurIPS 2021, timm's weights) for MMDetection 3.x and MMSegmentation 1.x.

Importing the package registers `CoaT`, `CoAtNet` and their classifiers in mmengine's root `MODELS`
registry, so `type='CoaT'` and `type='CoAtNet'` build from mmdet, mmseg and plain mmengine configs
alike, and the training hooks of `coat_backbone.engine` in its root `HOOKS`. It needs neither
mmdet/mmseg nor mmcv's compiled ops.
"""
from .requirements import check_requirements

check_requirements()

from .checkpoint import CheckpointError, load_coat_checkpoint  # noqa: E402
from .models import ARCH_SETTINGS, CoAtNet, CoAtNetClassifier, CoaT, CoaTClassifier  # noqa: E402
from . import engine  # noqa: E402,F401  (registers the training hooks in mmengine's root registry)

__version__ = '0.1.0'
__all__ = ['ARCH_SETTINGS', 'CheckpointError', 'CoAtNet', 'CoAtNetClassifier', 'CoaT',
           'CoaTClassifier', 'load_coat_checkpoint']
