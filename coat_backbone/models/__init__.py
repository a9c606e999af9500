"""The networks: CoaT and its ImageNet classifier. Importing registers them in mmengine's root
`MODELS`, so `type='CoaT'` builds under the mmdet, mmseg and plain mmengine scopes alike."""
from .coat import ARCH_SETTINGS, CoaT, CoaTClassifier

__all__ = ['ARCH_SETTINGS', 'CoaT', 'CoaTClassifier']
