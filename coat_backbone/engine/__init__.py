"""Training and testing support for tools/train.py, tools/test.py and tools/dist_*.sh.

Importing it registers `AtomicCheckpointHook`, `NonFiniteLossHook` and `CheckpointFitsModelHook`
in mmengine's root `HOOKS` registry (so mmdet and mmseg configs find them) and lets weights-only
`torch.load` read mmengine's own checkpoints (see `serialization`). It needs neither mmdet/mmseg
nor mmcv.
"""
from .hooks import (AtomicCheckpointHook, CheckpointFitsModelHook, NonFiniteLossError,
                    NonFiniteLossHook)
from .runtime import adapt_to_machine, build_runner, load_config, refuse_to_overwrite_a_run
from .serialization import allow_mmengine_checkpoints

allow_mmengine_checkpoints()

__all__ = [
    'AtomicCheckpointHook', 'CheckpointFitsModelHook', 'NonFiniteLossError', 'NonFiniteLossHook',
    'adapt_to_machine', 'allow_mmengine_checkpoints', 'build_runner', 'load_config',
    'refuse_to_overwrite_a_run'
]
