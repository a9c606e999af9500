"""Export CoaT (backbone or classifier) to ONNX with dynamic batch, height and width, and check
the file against PyTorch with onnxruntime.

Two exporters, both verified here to within 1e-5 of PyTorch at sizes other than the exported one
(CoaT takes any size: its grids come from the input, and the exported graphs compute them from
the input's shape):
- 'dynamo' (the default where torch has it, 2.5 and later): `torch.export`-based, torch's default
  and supported exporter since 2.9; its graphs carry symbolic output shapes (e.g. height // 8). It
  needs onnxscript, and tracing symbolic shapes takes minutes on a CPU for the published variants.
- 'torchscript' (the default, and the only exporter, before torch 2.5): the legacy tracer,
  deprecated since torch 2.9 but working, and much faster to export (lite_small at 224x224: 3 s
  against 50 s on a 2-core CPU). It needs only onnx.
Needs `onnx`, `onnxruntime` (for the check) and, for 'dynamo', `onnxscript`.
"""
import inspect
import warnings
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..models.coat import STRIDES, CoaT, CoaTClassifier, Size
from .outputs import write_atomically

EXPORTERS = ('dynamo', 'torchscript')
# torch.onnx.export chooses its exporter with `dynamo=` from torch 2.5; before, it has only the
# TorchScript one.
HAS_DYNAMO_EXPORTER = 'dynamo' in inspect.signature(torch.onnx.export).parameters
DEFAULT_EXPORTER = 'dynamo' if HAS_DYNAMO_EXPORTER else 'torchscript'
INPUT_NAME = 'img'


def output_names(model: CoaT) -> List[str]:
    """`logits` for a classifier; `stride4` ... `stride32` for the backbone's out_indices."""
    if isinstance(model, CoaTClassifier):
        return ['logits']
    return [f'stride{STRIDES[i]}' for i in model.out_indices]


def _dynamic_axes(model: CoaT) -> Dict[str, Dict[int, str]]:
    axes = {INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'}}
    for name in output_names(model):
        axes[name] = {0: 'batch'} if name == 'logits' else {
            0: 'batch', 2: f'height_{name}', 3: f'width_{name}'}
    return axes


def export_onnx(model: CoaT, path: Union[str, Path], input_size: Size,
                exporter: str = DEFAULT_EXPORTER, opset: Optional[int] = None,
                force: bool = False, protected: Iterable[Union[str, Path]] = ()) -> Path:
    """Write `model` (eval mode) to `path` as ONNX, traced at `input_size` (H, W) with batch,
    height and width left dynamic. The file is written atomically, over an existing one only
    with `force`, and never over a `protected` one (the command's inputs)."""
    if exporter not in EXPORTERS:
        raise ValueError(f'Unknown exporter {exporter!r}: choose one of {EXPORTERS}.')
    if exporter == 'dynamo' and not HAS_DYNAMO_EXPORTER:
        raise ValueError(f'The dynamo exporter needs torch 2.5 or later (torch.onnx.export with '
                         f'dynamo=True); torch {torch.__version__} has only the TorchScript '
                         f'exporter: use exporter torchscript (--exporter torchscript).')
    model.eval()
    # A batch of 2: torch.export specialises dimensions of size 1 to constants.
    example = torch.randn(2, model.patch_embed1.proj.in_channels, *input_size)
    names = output_names(model)

    def write(temporary: Path) -> None:
        if exporter == 'dynamo':
            dim = torch.export.Dim
            shapes = ({0: dim('batch'), 2: dim('height', min=32), 3: dim('width', min=32)},)
            program = torch.onnx.export(
                model, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=names,
                dynamic_shapes=shapes, opset_version=opset, verbose=False)
            program.save(str(temporary))
        else:
            with warnings.catch_warnings():
                # The legacy exporter's own deprecation notices, and a harmless note that one
                # slice is left unfolded; the numbers are checked by `check_onnx`.
                for message in ('You are using the legacy TorchScript',
                                'The feature will be removed', 'Constant folding - Only steps=1'):
                    warnings.filterwarnings('ignore', message=message)
                legacy = dict(dynamo=False) if HAS_DYNAMO_EXPORTER else {}
                torch.onnx.export(model, (example,), str(temporary), input_names=[INPUT_NAME],
                                  output_names=names, dynamic_axes=_dynamic_axes(model),
                                  opset_version=opset, **legacy)

    with torch.no_grad():
        return write_atomically(path, write, force=force, protected=protected)


def check_onnx(model: CoaT, path: Union[str, Path], sizes: Sequence[Size],
               batch_size: int = 1, seed: int = 0) -> List[Tuple[float, float]]:
    """For each size in `sizes`, run `model` and onnxruntime on `path` on the same random
    (normalised-image-like) input; returns (max absolute difference, max absolute PyTorch
    output) per size. Shapes must agree exactly.

    The magnitude puts the difference in scale: float32 rounding grows with it, and CoaT's
    dense outputs have no final norm (random weights give values in the hundreds at 800x1333).
    """
    import onnxruntime  # optional dependency, needed only here

    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    generator = torch.Generator().manual_seed(seed)
    results = []
    for size in sizes:
        image = torch.randn(batch_size, model.patch_embed1.proj.in_channels, *size,
                            generator=generator)
        with torch.no_grad():
            expected = model.eval()(image)
        expected = (expected,) if isinstance(expected, torch.Tensor) else expected
        outputs = session.run(None, {INPUT_NAME: image.numpy()})
        difference = magnitude = 0.0
        for name, ours, theirs in zip(output_names(model), outputs, expected):
            if tuple(ours.shape) != tuple(theirs.shape):
                raise RuntimeError(f'ONNX output {name} has shape {ours.shape} at input size '
                                   f'{size}, PyTorch {tuple(theirs.shape)}.')
            difference = max(difference, float(np.abs(ours - theirs.numpy()).max()))
            magnitude = max(magnitude, float(theirs.abs().max()))
        results.append((difference, magnitude))
    return results
