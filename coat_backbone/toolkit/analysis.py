"""Parameters and multiply-accumulates (MACs) of a CoaT or CoAtNet model, per scale, without any
data.

Why not only mmengine's `FlopAnalyzer` (what mmdet's get_flops runs): its total is the same
(equal to `paper_macs`, tested), but it runs the real computation and counts per module, and
CoaT's shared modules (each scale's CPE/CRPE, the parallel blocks' MLP, which runs at scales 2-4)
run at several places and scales. This counter hooks the modules, attributes each call to the
scale of the tensor it ran on, adds the factorized attention's two matmuls (softmax(K)^T V and
Q (softmax(K)^T V)) from the attention's input shape, and runs on the `meta` device.

What is counted, per call, from the shapes the model really sees (the forward runs on the `meta`
device, so no memory or compute is spent, at any input size):
- conv: `out_elements * in_channels / groups * kernel_area` (bias not counted);
- linear: `out_elements * in_features` (bias not counted);
- attention: `2 * tokens * channels * head_channels` per attention;
- norm_resize, NOT multiply-accumulates: LayerNorm at 5 operations per element and bilinear
  resizing at 4 per output element, the convention of fvcore, kept apart only because the paper's
  GMACs include them. Softmax, GELU, residual additions and the CRPE product Q * conv(V) are not
  counted, as in fvcore and `torch.utils.flop_counter`.
FLOPs = 2 x MACs (one multiply and one add each).

CoAtNet is counted by module names instead (its modules are not shared): the stem, its four stages
(scale1-4: strides 4-32) and the classifier's head, with convolutions and linear layers as above
and, per attention, its two matmuls (Q K^T and the weights times V: 2 x tokens x keys x channels,
over the padded windows in window mode) and the matmuls that resize a bias table to another grid.
Norms, pooling, softmax and additions are not counted; `norm_resize` stays 0.
"""
import copy
import math
import re
from dataclasses import dataclass, fields
from functools import partial
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn

from ..models.coat import CoaT, FactorAttnConvRelPosEnc, ParallelBlock, Size, grid_sizes
from ..models.coatnet import Attention, CoAtNet, Grid, RelPosBias

# GMACs at 224x224 of the ImageNet classifiers, as published in the CoaT paper (Table 2).
PAPER_GMACS_224: Dict[str, float] = {
    'tiny': 4.35, 'mini': 6.82, 'small': 12.61, 'lite_tiny': 1.60, 'lite_mini': 2.00,
    'lite_small': 3.96, 'lite_medium': 9.81}

ROWS = ('scale1', 'scale2', 'scale3', 'scale4', 'shared_mlp', 'head')
COATNET_ROWS = ('stem', 'scale1', 'scale2', 'scale3', 'scale4', 'head')
# Parameters named after their scale: `patch_embed2.*`, `serial_blocks3.*`, ...
_SCALE_PARAM = re.compile(r'^(?:patch_embed|cls_token|cpe|crpe|serial_blocks)(\d)')
# Parallel-block modules of one scale: `parallel_blocks.0.factoratt_crpe3.*`, ...
_PARALLEL_SCALE_PARAM = re.compile(r'^parallel_blocks\.\d+\.(?:norm1|factoratt_crpe|norm2)(\d)')
_PARALLEL_MLP_PARAM = re.compile(r'^parallel_blocks\.\d+\.mlp\d')


@dataclass
class Cost:
    """Parameters and operation counts of one row (a scale, the shared MLPs or the head)."""
    params: int = 0
    conv: int = 0
    linear: int = 0
    attention: int = 0
    norm_resize: int = 0

    @property
    def macs(self) -> int:
        """Multiply-accumulates of convolutions, linear layers and attention matmuls."""
        return self.conv + self.linear + self.attention

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def paper_macs(self) -> int:
        """MACs as the paper (fvcore) counts them: plus LayerNorm and bilinear resizing."""
        return self.macs + self.norm_resize

    def __add__(self, other: 'Cost') -> 'Cost':
        return Cost(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                       for f in fields(self)})


def _param_row(name: str) -> str:
    match = _SCALE_PARAM.match(name) or _PARALLEL_SCALE_PARAM.match(name)
    if match:
        return f'scale{match.group(1)}'
    return 'shared_mlp' if _PARALLEL_MLP_PARAM.match(name) else 'head'


class _Counter:
    """Forward hooks that add each call's cost to the row of the scale it ran at.

    A tensor's scale is read from its number of positions: the scales' grids shrink at least
    four-fold from one scale to the next, so positions (with or without the class token) identify
    the scale. Tensors without positions (the classification head) go to the 'head' row.
    """

    def __init__(self, sizes: List[Size]) -> None:
        self.rows = {row: Cost() for row in ROWS}
        self._scale_of = {h * w: f'scale{i + 1}' for i, (h, w) in enumerate(sizes)}

    def _row(self, positions: int) -> str:
        row = self._scale_of.get(positions) or self._scale_of.get(positions - 1)
        if row is None:
            raise RuntimeError(f'A tensor with {positions} positions matches no CoaT scale.')
        return row

    def _token_row(self, tensor: torch.Tensor) -> str:
        return self._row(tensor.shape[1]) if tensor.dim() == 3 else 'head'

    def conv(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        row = self._row(output.shape[2] * output.shape[3]) if output.dim() == 4 else 'head'
        self.rows[row].conv += (output.numel() * module.in_channels // module.groups
                                * math.prod(module.kernel_size))

    def linear(self, module: nn.Linear, inputs: tuple, output: torch.Tensor) -> None:
        self.rows[self._token_row(inputs[0])].linear += output.numel() * module.in_features

    def attention(self, module: FactorAttnConvRelPosEnc, inputs: tuple,
                  output: torch.Tensor) -> None:
        batch, tokens, channels = inputs[0].shape
        head_channels = channels // module.num_heads
        self.rows[self._row(tokens)].attention += 2 * batch * tokens * channels * head_channels

    def norm(self, module: nn.LayerNorm, inputs: tuple, output: torch.Tensor) -> None:
        self.rows[self._token_row(output)].norm_resize += 5 * output.numel()

    def fusion(self, module: ParallelBlock, inputs: tuple, output: List[torch.Tensor]) -> None:
        """Each of scales 2-4 receives the other two, bilinearly resized to its grid."""
        for tokens in output:
            image_elements = tokens.numel() - tokens.shape[0] * tokens.shape[2]
            self.rows[self._row(tokens.shape[1])].norm_resize += 2 * 4 * image_elements


def count_complexity(model: Union[CoaT, CoAtNet], input_size: Size,
                     batch_size: int = 1) -> Dict[str, Cost]:
    """Parameters and operations of `model` on a (batch_size, C, *input_size) input, per row: for
    CoaT those of `ROWS` (the four scales, the MLPs parallel blocks share across scales 2-4
    (parameters only; their operations are counted at the scale they run on), and the
    classification head); for CoAtNet those of `COATNET_ROWS`."""
    if isinstance(model, CoAtNet):
        return _count_coatnet(model, input_size, batch_size)
    if not isinstance(model, CoaT):
        raise TypeError(f'count_complexity counts CoaT and CoAtNet models, got '
                        f'{type(model).__name__}.')
    counter = _Counter(grid_sizes(*input_size))
    for name, param in model.named_parameters():  # shared parameters are listed once
        counter.rows[_param_row(name)].params += param.numel()

    meta_model = copy.deepcopy(model).to('meta').eval()
    hooks = {nn.Conv2d: counter.conv, nn.Conv1d: counter.conv, nn.Linear: counter.linear,
             FactorAttnConvRelPosEnc: counter.attention, nn.LayerNorm: counter.norm,
             ParallelBlock: counter.fusion}
    for module in meta_model.modules():
        hook = hooks.get(type(module))
        if hook is not None:
            module.register_forward_hook(hook)
    in_channels = meta_model.patch_embed1.proj.in_channels
    with torch.no_grad():
        meta_model(torch.empty(batch_size, in_channels, *input_size, device='meta'))
    return counter.rows


def total_cost(rows: Dict[str, Cost]) -> Cost:
    """The sum of all rows."""
    return sum(rows.values(), Cost())


def _coatnet_row(name: str) -> str:
    """The row of a CoAtNet parameter or module: 'stem', 'scale<stage + 1>' or 'head'."""
    if name.startswith('stem'):
        return 'stem'
    match = re.match(r'^stages\.(\d)', name)
    return f'scale{int(match.group(1)) + 1}' if match else 'head'


def _grid_and_windows(size: Grid, window: Optional[Grid]) -> Grid:
    """(positions per attention, attentions per image) of a map of `size`."""
    if window is None:
        return size[0] * size[1], 1
    windows = math.ceil(size[0] / window[0]) * math.ceil(size[1] / window[1])
    return window[0] * window[1], windows


class _CoAtNetCounter:
    """Forward hooks adding each call's operations to its module's row."""

    def __init__(self) -> None:
        self.rows = {row: Cost() for row in COATNET_ROWS}

    def conv(self, row: str, module: nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
        self.rows[row].conv += (output.numel() * module.in_channels // module.groups
                                * math.prod(module.kernel_size))

    def linear(self, row: str, module: nn.Linear, inputs: tuple, output: torch.Tensor) -> None:
        self.rows[row].linear += output.numel() * module.in_features

    def attention(self, row: str, module: Attention, inputs: tuple,
                  output: torch.Tensor) -> None:
        x = inputs[0]
        window = inputs[1] if len(inputs) > 1 else None
        size = tuple(x.shape[2:])
        positions, windows = _grid_and_windows(size, window)
        channels = module.num_heads * module.dim_head
        self.rows[row].attention += 2 * x.shape[0] * windows * positions ** 2 * channels
        grid = window or size
        rel_pos = module.rel_pos
        if isinstance(rel_pos, RelPosBias) and grid != (rel_pos.pretrained_grid, ) * 2:
            # rows (2H-1, S) @ table (heads, S, S) @ columns.T (S, 2W-1), S = 2 * grid - 1
            span = 2 * rel_pos.pretrained_grid - 1
            height, width = 2 * grid[0] - 1, 2 * grid[1] - 1
            self.rows[row].attention += module.num_heads * height * span * (span + width)


def _count_coatnet(model: CoAtNet, input_size: Size, batch_size: int) -> Dict[str, Cost]:
    counter = _CoAtNetCounter()
    for name, param in model.named_parameters():
        counter.rows[_coatnet_row(name)].params += param.numel()
    meta_model = copy.deepcopy(model).to('meta').eval()
    hooks = {nn.Conv2d: counter.conv, nn.Linear: counter.linear, Attention: counter.attention}
    for name, module in meta_model.named_modules():
        hook = hooks.get(type(module))
        if hook is not None:
            module.register_forward_hook(partial(hook, _coatnet_row(name)))
    in_channels = meta_model.stem.conv1.in_channels
    with torch.no_grad():
        meta_model(torch.empty(batch_size, in_channels, *input_size, device='meta'))
    return counter.rows
