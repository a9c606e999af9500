"""Attention maps of CoaT's factorized attention, captured by forward hooks on the `qkv` linear
layers (the model's forward is not changed), and pictures of them.

CoaT never forms an N x N attention matrix. Per head, with Q, K, V of shape (N, Ch) for the N
tokens and the softmax of K taken over the tokens, the factorized term of query i is

    out_i = scale * q_i^T (softmax(K)^T V) = sum_n w_in v_n,   w_in = scale * q_i . softmax(K)_n

so `w_in` is exactly the weight with which token n's value reaches query i: the model's own
attention map (signed, and summing to scale * sum_c q_ic, not to 1). For comparison the
conventional map softmax_n(scale * q_i . k_n), which a standard transformer with the same Q and K
would use, is offered as well; CoaT does not compute it. The convolutional relative position
encoding adds q_i * (depthwise conv of V)_i, a local term: its magnitude per token and head shows
where it contributes.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageOps

from ..models.coat import STRIDES, CoaT, FactorAttnConvRelPosEnc, Size, grid_sizes
# The normalisation of the ImageNet-pretrained CoaT (RGB, 0-255), as in the detection configs.
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


@dataclass
class AttentionRecord:
    """Q, K, V and the CRPE term of one attention call, for the first image of the batch."""
    name: str  # the attention module, e.g. 'parallel_blocks.5.factoratt_crpe2'
    scale: int  # 1-4
    size: Size  # token grid (rows, columns); token 0 is the class token
    q: torch.Tensor  # (heads, N, head_channels)
    k: torch.Tensor
    v: torch.Tensor
    crpe: torch.Tensor  # (heads, N, head_channels), zero for the class token
    factor: float  # the attention's scale, head_channels ** -0.5

    def factorized_weights(self, query: int) -> torch.Tensor:
        """(heads, N): w_n = scale * q_query . softmax_over_tokens(K)_n, the model's weights."""
        keys = self.k.softmax(dim=1)
        return self.factor * torch.einsum('hc,hnc->hn', self.q[:, query], keys)

    def softmax_attention(self, query: int) -> torch.Tensor:
        """(heads, N): softmax_n(scale * q_query . k_n), the conventional map (not computed by
        CoaT)."""
        logits = self.factor * torch.einsum('hc,hnc->hn', self.q[:, query], self.k)
        return logits.softmax(dim=-1)

    def crpe_magnitude(self) -> torch.Tensor:
        """(heads, N): L2 norm of the CRPE term over each head's channels."""
        return self.crpe.norm(dim=-1)


def attention_modules(model: CoaT) -> Dict[int, List[Tuple[str, FactorAttnConvRelPosEnc]]]:
    """The attentions of each scale (1-4) in the order they run: serial, then parallel blocks."""
    modules: Dict[int, List[Tuple[str, FactorAttnConvRelPosEnc]]] = {s: [] for s in range(1, 5)}
    for scale in range(1, 5):
        for index, block in enumerate(getattr(model, f'serial_blocks{scale}')):
            modules[scale].append((f'serial_blocks{scale}.{index}.factoratt_crpe',
                                   block.factoratt_crpe))
        if scale > 1 and model.parallel_depth > 0:
            for index, block in enumerate(model.parallel_blocks):
                modules[scale].append((f'parallel_blocks.{index}.factoratt_crpe{scale}',
                                       getattr(block, f'factoratt_crpe{scale}')))
    return modules


@torch.no_grad()
def capture_attention(model: CoaT, image: torch.Tensor, block: int = -1
                      ) -> Tuple[Dict[int, AttentionRecord], List[torch.Tensor]]:
    """Run `model` on `image` (1, C, H, W) and record, for each scale that has it, the attention
    numbered `block` in `attention_modules` order (-1: the last). Scale 1 of a non-Lite arch has
    only its serial blocks, so a parallel block's number skips it. Also returns each scale's
    (C, h, w) feature map of the first image (class token removed)."""
    sizes = grid_sizes(*image.shape[-2:])
    modules_of_scale = attention_modules(model)
    selected = {scale: modules[block] for scale, modules in modules_of_scale.items()
                if -len(modules) <= block < len(modules)}
    if not selected:
        counts = ', '.join(f'scale {scale}: {len(modules)}'
                           for scale, modules in modules_of_scale.items())
        raise ValueError(f'block={block} is out of range: the scales have {counts} attentions.')
    records: Dict[int, AttentionRecord] = {}
    handles = []
    for scale, (name, attention) in selected.items():
        def record(layer: torch.nn.Module, inputs: tuple, output: torch.Tensor, scale=scale,
                   name=name, attention=attention) -> None:
            batch, tokens, _ = output.shape
            q, k, v = output.reshape(batch, tokens, 3, attention.num_heads, -1).permute(
                2, 0, 3, 1, 4)
            crpe = attention.crpe(q, v, sizes[scale - 1])
            records[scale] = AttentionRecord(name, scale, sizes[scale - 1], q[0], k[0], v[0],
                                             crpe[0], attention.scale)

        handles.append(attention.qkv.register_forward_hook(record))
    try:
        tokens, _ = model.eval().forward_tokens(image)
    finally:
        for handle in handles:
            handle.remove()
    features = [t[0, 1:].T.reshape(-1, *size) for t, size in zip(tokens, sizes)]
    return records, features


def load_image(path: Union[str, Path], max_size: int
               ) -> Tuple[np.ndarray, torch.Tensor, Tuple[int, int]]:
    """An image resized so that its longer side is `max_size`: as RGB uint8 (H, W, 3) for
    drawing, normalised (1, 3, H, W) for the model, and the original (width, height), upright
    as its EXIF orientation says (as mmcv reads images for mmdet and mmseg)."""
    with Image.open(path) as stored:
        picture = ImageOps.exif_transpose(stored).convert('RGB')
    ratio = max_size / max(picture.size)
    width, height = (max(32, round(side * ratio)) for side in picture.size)
    rgb = np.array(picture.resize((width, height), Image.BILINEAR))
    tensor = torch.from_numpy(rgb).permute(2, 0, 1).float()
    tensor = (tensor - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    return rgb, tensor[None], picture.size


def query_token(point: Optional[Tuple[float, float]], image_size: Size, grid: Size,
                stride: int) -> int:
    """Token index of pixel `point` (x, y) at a scale with token grid `grid` and `stride`: the
    token whose patch holds the pixel (pixels past the last whole patch, which the patch
    embedding drops, go to the last token); None: the class token (index 0)."""
    if point is None:
        return 0
    x, y = point
    height, width = image_size
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f'The query point ({x}, {y}) is outside the {width}x{height} image.')
    row = min(int(y // stride), grid[0] - 1)
    column = min(int(x // stride), grid[1] - 1)
    return 1 + row * grid[1] + column


def _overlay(figure: Figure, axis, rgb: np.ndarray, values: np.ndarray, stride: int,
             cmap: str, symmetric: bool, point: Optional[Tuple[float, float]]) -> None:
    """Draw `values` (h, w) over the grey image, each token over the pixels it covers."""
    axis.imshow(rgb.mean(axis=2), cmap='gray', vmin=0, vmax=255,
                extent=(0, rgb.shape[1], rgb.shape[0], 0))
    limit = float(np.abs(values).max()) or 1.0
    limits = dict(vmin=-limit, vmax=limit) if symmetric else {}
    shown = axis.imshow(values, cmap=cmap, alpha=0.75, interpolation='nearest',
                        extent=(0, values.shape[1] * stride, values.shape[0] * stride, 0),
                        **limits)
    axis.set_xlim(0, rgb.shape[1])
    axis.set_ylim(rgb.shape[0], 0)
    if point is not None:
        axis.plot(*point, marker='x', color='lime', markersize=8, markeredgewidth=2)
    axis.set_xticks([])
    axis.set_yticks([])
    colorbar = figure.colorbar(shown, ax=axis, shrink=0.9, format='%.3g')
    colorbar.ax.tick_params(labelsize=7)


def plot_attention(rgb: np.ndarray, record: AttentionRecord, point: Optional[Tuple[float, float]],
                   heads: Sequence[int], out_file: Union[str, Path], dpi: int = 100) -> Path:
    """One figure for one scale: a row per head in `heads`; columns = the factorized weights,
    the conventional softmax map and the CRPE magnitude."""
    stride = STRIDES[record.scale - 1]
    query = query_token(point, rgb.shape[:2], record.size, stride)
    maps = [('factorized weights w_n (what CoaT applies)', record.factorized_weights(query),
             'coolwarm', True),
            ('softmax(scale q.k_n) (NOT computed by CoaT)', record.softmax_attention(query),
             'viridis', False),
            ('CRPE magnitude |q_n * conv(V)_n|', record.crpe_magnitude(), 'magma', False)]
    panel_width = 0.9 + 2.2 * rgb.shape[1] / rgb.shape[0]
    figure = Figure(figsize=(panel_width * len(maps) + 0.4, 2.3 * len(heads) + 1.2),
                    layout='constrained')
    axes = figure.subplots(len(heads), len(maps), squeeze=False)
    for row, head in enumerate(heads):
        for column, (label, values, cmap, symmetric) in enumerate(maps):
            axis = axes[row, column]
            _overlay(figure, axis, rgb, values[head, 1:].reshape(record.size).numpy(), stride,
                     cmap, symmetric, point)
            title = label if row == 0 else ''
            if column < 2:
                title += f'\nclass token: {values[head, 0]:.2g}'
            axis.set_title(title.strip(), fontsize=8)
        axes[row, 0].set_ylabel(f'head {head}', fontsize=9)
    row, column = divmod(query - 1, record.size[1])
    target = 'the class token' if point is None else (
        f'token {query} (grid row {row}, column {column}), marked x')
    figure.suptitle(f'CoaT scale {record.scale} (stride {stride}, grid {record.size[0]}x'
                    f'{record.size[1]}), {record.name}\nquery: {target}', fontsize=10)
    figure.supxlabel('w_n = scale * q . softmax_over_tokens(K)_n: weight of token n\'s value in '
                     'the query\'s output (signed).\nsoftmax(scale q.k_n): a standard '
                     'transformer\'s map for the same q, k. CRPE: the local convolutional\n'
                     'relative-position term of each token (not query-specific).', fontsize=8)
    return _save(figure, out_file, dpi)


def plot_features(rgb: np.ndarray, features: Sequence[torch.Tensor],
                  point: Optional[Tuple[float, float]], out_file: Union[str, Path],
                  dpi: int = 100) -> Path:
    """The input, then each scale's feature map as the L2 norm over its channels."""
    panel_width = 0.6 + 2.0 * rgb.shape[1] / rgb.shape[0]
    figure = Figure(figsize=(panel_width * (len(features) + 1), 3.2), layout='constrained')
    axes = figure.subplots(1, len(features) + 1)
    axes[0].imshow(rgb)
    if point is not None:
        axes[0].plot(*point, marker='x', color='lime', markersize=9, markeredgewidth=2.5)
    axes[0].set_title(f'input {rgb.shape[1]}x{rgb.shape[0]}', fontsize=9)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    for scale, (axis, feature) in enumerate(zip(axes[1:], features), start=1):
        _overlay(figure, axis, rgb, feature.norm(dim=0).numpy(), STRIDES[scale - 1], 'magma',
                 False, None)
        axis.set_title(f'scale {scale} (stride {STRIDES[scale - 1]}, grid {feature.shape[1]}x'
                       f'{feature.shape[2]}):\nL2 norm over {feature.shape[0]} channels',
                       fontsize=8)
    return _save(figure, out_file, dpi)


def _save(figure: Figure, out_file: Union[str, Path], dpi: int) -> Path:
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, dpi=dpi)
    return out_file
