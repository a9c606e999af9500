"""Let PyTorch's weights-only `torch.load` (the default since torch 2.6) read mmengine checkpoints.

mmengine 0.10 calls `torch.load` without `weights_only` when it resumes, loads `load_from`, tests
or runs inference, so from torch 2.6 on its own training checkpoints fail to load: besides tensors
they pickle the message hub's `HistoryBuffer`s (numpy arrays, and references to the buffer's
statistics methods, pickled as `getattr(HistoryBuffer, 'mean')`), numpy scalars and the lr
schedulers' `collections.Counter`.

Rather than turning weights-only loading off (which lets a checkpoint run arbitrary code), this
allow-lists exactly those types with `torch.serialization.add_safe_globals`. Unpickling them only
rebuilds data. `builtins.getattr` is NOT allowed in general: it is mapped to a function that
resolves nothing but the statistics methods of `HistoryBuffer`. The registration is process-wide
(the loads happen deep inside mmengine, for example in `Runner.resume`) but only adds these types.
Before torch 2.6 `torch.load` unpickles in full by default, so mmengine's loads need nothing (and
torch 2.1 has no allowlist to add to).
"""
from collections import Counter
from typing import Any, Callable, List

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from packaging.version import Version

# The first torch whose torch.load defaults to weights_only=True.
WEIGHTS_ONLY_BY_DEFAULT = Version(torch.__version__).release >= (2, 6)


def _history_buffer_statistic(owner: Any, name: str) -> Callable:
    """Stand-in for `getattr` while unpickling: only `HistoryBuffer`'s statistics methods."""
    # The defaults are added to the class-wide registry only once a buffer exists: name them.
    allowed = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if owner is not HistoryBuffer or name not in allowed:
        raise torch.serialization.pickle.UnpicklingError(
            f'Refusing getattr({owner!r}, {name!r}) in a weights-only checkpoint load: only the '
            f'statistics methods of mmengine\'s HistoryBuffer may be looked up.')
    return getattr(HistoryBuffer, name)


def _numpy_globals() -> List[Any]:
    """The numpy pieces of pickled arrays and scalars, under their numpy 1.x and 2.x names."""
    core = np._core if hasattr(np, '_core') else np.core
    dtype_classes = [type(np.dtype(code)) for code in '?bBhHiIlLqQefdgFDG']
    safe: List[Any] = [np.ndarray, np.dtype, *dtype_classes]
    for name in ('_reconstruct', 'scalar'):
        function = getattr(core.multiarray, name)
        safe += [(function, f'numpy.core.multiarray.{name}'),
                 (function, f'numpy._core.multiarray.{name}')]
    return safe


def allow_mmengine_checkpoints() -> None:
    """Allow-list the non-tensor types of mmengine checkpoints for weights-only loading."""
    if not WEIGHTS_ONLY_BY_DEFAULT:
        return
    torch.serialization.add_safe_globals([
        HistoryBuffer,
        Counter,
        (_history_buffer_statistic, 'builtins.getattr'),
        *_numpy_globals(),
    ])
