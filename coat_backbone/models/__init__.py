"""The networks: CoaT and CoAtNet, and their ImageNet classifiers. Importing registers them in
mmengine's root `MODELS`, so `type='CoaT'` and `type='CoAtNet'` build under the mmdet, mmseg and
plain mmengine scopes alike."""
from .coat import ARCH_SETTINGS, CoaT, CoaTClassifier
from .coatnet import CoAtNet, CoAtNetClassifier

__all__ = ['ARCH_SETTINGS', 'CoAtNet', 'CoAtNetClassifier', 'CoaT', 'CoaTClassifier']
