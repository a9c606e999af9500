"""CoAtNet: convolution and attention stacked, as a dense-prediction backbone.

Paper: Zihang Dai, Hanxiao Liu, Quoc V. Le, Mingxing Tan, "CoAtNet: Marrying Convolution and
Attention for All Data Sizes", NeurIPS 2021, https://arxiv.org/abs/2106.04803.
Variants and weights: timm (`timm/models/maxxvit.py`, Ross Wightman, Apache-2.0) defines the
`coatnet_*_rw` models and publishes their ImageNet weights on the Hugging Face Hub. This module,
licensed Apache-2.0 like timm, builds on timm's size-agnostic modules (stem, MBConv block,
pooling, norms, MLPs) and has its own attention, because timm's relative-position modules are
sized for one grid and hold an N x N int64 index per block.

Parameters keep timm's names (`stages.2.blocks.0.attn.rel_pos.relative_position_bias_table`,
`stages.2.blocks.0.attn.rel_pos.mlp.fc1.weight`, ...), so timm's state dicts load strictly. The
relative position term follows the input's grid: the `rmlp` variants compute it with their MLP
from log-spaced offsets of any grid; the others resize their learned table to the grid exactly as
timm's `checkpoint_filter_fn` does, differentiably, and gather it by row and column offsets.
Inputs whose sides are not multiples of 32 are zero-padded at the bottom and right, as mmdet's
`pad_size_divisor=32` pads them, and the maps cropped back to ceil(side / stride).

At detection resolution global attention at stride 16 is large (800x1344: 4200 x 4200 per head
and block), so `attention='window'` attends within windows of the pretrained grid there (14x14
for the 224 models, where the learned table is exact) and keeps chosen blocks global, in the
manner of ViTDet; stride 32 stays global.

Layout: the relative position terms, attention and transformer block, then the backbone
(`CoAtNet`), the classifier (`CoAtNetClassifier`), the variant registry (`ARCH_SETTINGS`,
`PRETRAINED`) and the reading of an arch from weights (`arch_of`).
"""
import functools
import math
import warnings
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.registry import MODELS
from timm.layers import (ClassifierHead, ConvMlp, DropPath, LayerScale2d, Mlp, get_act_layer,
                         get_norm_layer, resize_rel_pos_bias_table, trunc_normal_)
from timm.models.maxxvit import (Downsample2d, MaxxVitConvCfg, MaxxVitTransformerCfg, MbConvBlock,
                                 Stem)

from .common import (DenseBackbone, as_list, check_drop_path_rate, check_frozen_stages,
                     check_out_indices, freeze, is_int, pretrained_as_init_cfg, refuse_unexpected)

Grid = Tuple[int, int]

# Stride of each stage's output (the stem has stride 2, each stage halves again). Stages 0-1 are
# MBConv, stages 2-3 transformer blocks.
STRIDES = (4, 8, 16, 32)
ATTENTION_STAGES = (2, 3)
# The stage whose attention `attention='window'` partitions; stride 32 stays global.
WINDOWED_STAGE = 2
# Sides are padded to a multiple of the largest stride.
SIZE_DIVISOR = STRIDES[-1]
ATTENTION_MODES = ('global', 'window')


# Relative position terms ---------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _offset_index(length: int, device: torch.device) -> torch.Tensor:
    """(length, length) index of the offset between two positions on a line, query minus key,
    shifted to start at 0: the row (or column) of a relative position table."""
    positions = torch.arange(length, device=device)
    return positions[:, None] - positions[None, :] + length - 1


def expand_relative_table(table: torch.Tensor, grid: Grid) -> torch.Tensor:
    """A (heads, 2H-1, 2W-1) table of one value per relative offset -> the (heads, H*W, H*W)
    attention bias, bias[h, q, k] = table[h, row_q - row_k + H-1, col_q - col_k + W-1]. Gathered
    by an H x H row and a W x W column index, not an N x N one."""
    rows, columns = (_offset_index(length, table.device) for length in grid)
    bias = table[:, rows[:, None, :, None], columns[None, :, None, :]]  # (heads, H, W, H, W)
    return bias.reshape(table.shape[0], grid[0] * grid[1], grid[0] * grid[1])


@functools.lru_cache(maxsize=64)
def _table_resize_weights(source: int, target: Grid) -> Tuple[torch.Tensor, torch.Tensor]:
    """Row and column interpolation matrices, (2H-1, 2s-1) and (2W-1, 2s-1), such that
    rows @ T @ columns.T is timm's `resize_rel_pos_bias_table` of a table T learned on an
    s x s grid, resized to the grid `target` = (H, W).

    timm's resize (what its `checkpoint_filter_fn` applies) interpolates linearly between source
    offsets spread geometrically over the target's, per axis: a separable linear map. Resizing
    tables that vary along one axis only, with timm's own function, reads off its weights; the
    matrices then resize every head at once, on the table's device and differentiably."""
    span = 2 * source - 1
    target_span = (2 * target[0] - 1, 2 * target[1] - 1)
    with torch.device('cpu'):  # real values even when a model is built under torch.device('meta')
        eye = torch.eye(span)
        # Heads 0..span-1: one-hot along rows; heads span..2*span-1: one-hot along columns.
        basis = torch.cat((eye[:, :, None].expand(span, span, span),
                           eye[:, None, :].expand(span, span, span)))
        with warnings.catch_warnings():
            # timm's interpolator indexes with a list and bucketizes non-contiguous values, which
            # recent torch versions warn about; the weights are computed once per grid.
            warnings.simplefilter('ignore', UserWarning)
            resized = resize_rel_pos_bias_table(
                basis.reshape(2 * span, span * span).t(), new_window_size=target,
                new_bias_shape=(target_span[0] * target_span[1], 2 * span))
    resized = resized.t().reshape(2 * span, *target_span)
    return resized[:span, :, 0].t().contiguous(), resized[span:, 0, :].t().contiguous()


class RelPosBias(nn.Module):
    """A learned bias per head and relative offset, learned on a square grid (timm's `RelPosBias`
    parameter, under its name). For another grid the table is resized as timm's
    `checkpoint_filter_fn` resizes it."""

    def __init__(self, num_heads: int, pretrained_grid: int) -> None:
        super().__init__()
        self.pretrained_grid = pretrained_grid
        span = 2 * pretrained_grid - 1
        self.relative_position_bias_table = nn.Parameter(torch.empty(span * span, num_heads))
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def table(self, grid: Grid) -> torch.Tensor:
        """The (heads, 2H-1, 2W-1) table for a grid of H x W positions."""
        span = 2 * self.pretrained_grid - 1
        table = self.relative_position_bias_table.t().reshape(-1, span, span)
        if grid == (self.pretrained_grid, self.pretrained_grid):
            return table
        rows, columns = (weights.to(table) for weights in
                         _table_resize_weights(self.pretrained_grid, grid))
        return rows @ table @ columns.t()


@functools.lru_cache(maxsize=None)
def _log_offsets(grid: Grid, device: torch.device) -> torch.Tensor:
    """(2H-1, 2W-1, 2) relative offsets (row, column) mapped by sign(d) * log(1 + |d|), the
    input of timm's `RelPosMlp` ('cr' mode) for a grid of H x W positions."""
    rows, columns = (torch.arange(-(length - 1), length, device=device).to(torch.float32)
                     for length in grid)
    offsets = torch.stack(torch.meshgrid(rows, columns, indexing='ij'), dim=-1)
    return torch.sign(offsets) * torch.log(1.0 + offsets.abs())


class RelPosMlp(nn.Module):
    """The relative position term of the `rmlp` variants: an MLP of the log-spaced offsets (timm's
    `RelPosMlp` in its 'cr' mode, under its parameter names), defined for any grid."""

    def __init__(self, num_heads: int, hidden_dim: int) -> None:
        super().__init__()
        self.mlp = Mlp(2, hidden_features=hidden_dim, out_features=num_heads, act_layer=nn.ReLU,
                       drop=(0.125, 0.0))

    def table(self, grid: Grid) -> torch.Tensor:
        """The (heads, 2H-1, 2W-1) table for a grid of H x W positions."""
        return self.mlp(_log_offsets(grid, self.mlp.fc1.weight.device)).permute(2, 0, 1)


# Attention and transformer block -------------------------------------------------------------
def _window_key_mask(grid: Grid, window: Grid, device: torch.device) -> Optional[torch.Tensor]:
    """(windows, 1, 1, window area) additive mask hiding the keys of the bottom and right padding
    that makes the grid a whole number of windows; None without padding."""
    padded = [math.ceil(side / part) * part for side, part in zip(grid, window)]
    if padded == list(grid):
        return None
    inside = torch.zeros(padded, dtype=torch.bool, device=device)
    inside[:grid[0], :grid[1]] = True
    inside = inside.view(padded[0] // window[0], window[0], padded[1] // window[1], window[1])
    inside = inside.permute(0, 2, 1, 3).reshape(-1, 1, 1, window[0] * window[1])
    return torch.zeros(inside.shape, device=device).masked_fill(~inside, float('-inf'))


class Attention(nn.Module):
    """Multi-head self-attention of an NCHW map with a relative position term (timm's
    `Attention2d` parameters: `qkv`, `rel_pos`, `proj`), over the whole map or within windows.

    `expand_first`: the attention runs at the output width (else at the input width and the
    projection changes it), as timm's flag of that name."""

    def __init__(self, dim: int, dim_out: int, cfg: MaxxVitTransformerCfg,
                 pretrained_grid: int) -> None:
        super().__init__()
        dim_attn = dim_out if cfg.expand_first else dim
        self.num_heads = dim_attn // cfg.dim_head
        self.dim_head = cfg.dim_head
        self.qkv = nn.Conv2d(dim, dim_attn * 3, 1, bias=cfg.attn_bias)
        self.rel_pos = (RelPosMlp(self.num_heads, cfg.rel_pos_dim) if cfg.rel_pos_type == 'mlp'
                        else RelPosBias(self.num_heads, pretrained_grid))
        self.attn_drop = cfg.attn_drop
        self.proj = nn.Conv2d(dim_attn, dim_out, 1, bias=cfg.attn_bias)
        self.proj_drop = nn.Dropout(cfg.proj_drop)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                bias: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.to(q.dtype),
            dropout_p=self.attn_drop if self.training else 0.0)

    def forward(self, x: torch.Tensor, window: Optional[Grid] = None) -> torch.Tensor:
        """x: (B, C, H, W). `window`: attend within windows of this many rows and columns (the
        map padded at the bottom and right to whole windows, the padding masked), else over the
        whole map."""
        batch, _, height, width = x.shape
        heads, dim_head = self.num_heads, self.dim_head
        qkv = self.qkv(x).view(batch, heads, 3 * dim_head, height, width)
        if window is None:
            q, k, v = (t.flatten(3).transpose(-1, -2).contiguous()
                       for t in qkv.chunk(3, dim=2))
            bias = expand_relative_table(self.rel_pos.table((height, width)), (height, width))
            out = self._attend(q, k, v, bias[None])
            out = out.transpose(-1, -2).reshape(batch, heads * dim_head, height, width)
        else:
            rows, columns = (math.ceil(side / part)
                             for side, part in zip((height, width), window))
            area = window[0] * window[1]
            qkv = F.pad(qkv, (0, columns * window[1] - width, 0, rows * window[0] - height))
            # (B, heads, 3*dh, rows, wh, columns, ww) -> (B * windows, heads, area, 3*dh)
            qkv = qkv.view(batch, heads, 3 * dim_head, rows, window[0], columns, window[1])
            qkv = qkv.permute(0, 3, 5, 1, 4, 6, 2).reshape(-1, heads, area, 3 * dim_head)
            q, k, v = (t.contiguous() for t in qkv.chunk(3, dim=-1))
            bias = expand_relative_table(self.rel_pos.table(window), window)[None]
            mask = _window_key_mask((height, width), window, x.device)
            if mask is not None:
                bias = (bias + mask).repeat(batch, 1, 1, 1)
            out = self._attend(q, k, v, bias)
            out = out.view(batch, rows, columns, heads, window[0], window[1], dim_head)
            out = out.permute(0, 3, 6, 1, 4, 2, 5).reshape(
                batch, heads * dim_head, rows * window[0], columns * window[1])
            out = out[:, :, :height, :width]
        return self.proj_drop(self.proj(out))


class TransformerBlock(nn.Module):
    """Pre-norm attention and MLP blocks with residuals on NCHW maps, the first of a stage
    downsampling by 2 (timm's `TransformerBlock2d`, under its parameter names).

    `window`: the attention's windows (None: global)."""

    def __init__(self, dim: int, dim_out: int, stride: int, cfg: MaxxVitTransformerCfg,
                 pretrained_grid: int, drop_path: float, window: Optional[Grid]) -> None:
        super().__init__()
        norm_layer = get_norm_layer(cfg.norm_layer)
        if stride == 2:
            self.shortcut = Downsample2d(dim, dim_out, pool_type=cfg.pool_type,
                                         bias=cfg.shortcut_bias)
            self.norm1 = nn.Sequential(OrderedDict([
                ('norm', norm_layer(dim, eps=cfg.norm_eps)),
                ('down', Downsample2d(dim, dim, pool_type=cfg.pool_type))]))
        else:
            self.shortcut = nn.Identity()
            self.norm1 = norm_layer(dim, eps=cfg.norm_eps)
        self.attn = Attention(dim, dim_out, cfg, pretrained_grid)
        self.ls1 = LayerScale2d(dim_out, cfg.init_values) if cfg.init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim_out, eps=cfg.norm_eps)
        self.mlp = ConvMlp(dim_out, int(dim_out * cfg.expand_ratio),
                           act_layer=get_act_layer(cfg.act_layer), drop=cfg.proj_drop)
        self.ls2 = LayerScale2d(dim_out, cfg.init_values) if cfg.init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.window = window
        self._init_weights()

    def _init_weights(self) -> None:
        """timm's initialisation of its transformer blocks ('vit_eff'): Xavier-uniform weights,
        zero biases but tiny random ones in the MLPs (the relative-position MLP included)."""
        for name, module in self.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    if 'mlp' in name:
                        nn.init.normal_(module.bias, std=1e-6)
                    else:
                        nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shortcut(x) + self.drop_path1(self.ls1(self.attn(self.norm1(x), self.window)))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class Stage(nn.Module):
    """The blocks of one stage (timm's `MaxxVitStage`: `stages.<i>.blocks.<j>`)."""

    def __init__(self, blocks: List[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)


# The backbone ------------------------------------------------------------------------------
@MODELS.register_module()
class CoAtNet(DenseBackbone):
    """CoAtNet backbone: a convolutional stem (stride 2), two MBConv stages (strides 4 and 8),
    two transformer stages with relative attention (strides 16 and 32).

    Args:
        arch: a timm CoAtNet name, with or without its size suffix ('coatnet_0_rw',
            'coatnet_0_rw_224', 'coatnet_rmlp_2_rw_384'; see `ARCH_SETTINGS`), or a dict of your
            own widths: embed_dims (4 ints), depths (4 ints), stem_width (1 or 2 ints) and style
            (the name of the variant whose blocks it uses, e.g. 'coatnet_0_rw').
        in_channels: input image channels.
        out_indices: which stages (0-3, strides 4/8/16/32) to return; an int returns one. They come
            from high to low resolution whatever the order given. Stages after the last returned
            one keep their weights (checkpoints load and save whole) but neither run nor train.
        drop_path_rate: stochastic depth of the last block, rising linearly from 0 over the
            blocks (timm's rule).
        frozen_stages: -1: none; 0: the stem; k = 1-4: the stem and the first k stages (eval mode,
            no gradients), as mmdet's ResNet counts them. Re-applied on `train()`.
        norm_eval: keep every BatchNorm layer in eval mode while training (its ImageNet
            statistics), as mmdet's ResNet does for small per-GPU batches.
        attention: 'global' (the pretrained model's attention, over the whole map) or 'window':
            at stride 16, attention within windows of `window_size` (the map padded to whole
            windows, the padding masked) except in `global_blocks`; stride 32 stays global.
        window_size: rows and columns of a window (an int: square); default: the pretrained grid
            at stride 16 (14 for 224 models), where the learned bias table applies unresized.
        global_blocks: with attention='window', the blocks of the stride-16 stage (0-based) that
            keep global attention, ViTDet style; default: its last block, so that the stride-16
            output mixes the whole image (() for windows only).
        with_cp: gradient checkpointing of every block (non-reentrant), trading compute for
            activation memory, whenever autograd records.
        pretrained: a checkpoint path, as mmseg passes it; same as init_cfg Pretrained.
        init_cfg: `dict(type='Pretrained', checkpoint=NAME)` (alone or in a list) loads any
            format that `coat_backbone.checkpoint` accepts (timm's state dicts, safetensors,
            `hf-hub:timm/coatnet_0_rw_224.sw_in1k`), optionally with `prefix=`; anything else
            goes to mmengine.
        **unexpected: refused, naming them: mostly another backbone's settings (ResNet's depth,
            num_stages, ...) merged in from a base config that needs `_delete_=True`.
    """

    # What coat_backbone.checkpoint asks a model family, to say what a mismatched file is.
    arch_family = 'CoAtNet'
    input_weight_key = 'stem.conv1.weight'

    def __init__(self,
                 arch: Union[str, dict] = 'coatnet_0_rw',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.0,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 attention: str = 'global',
                 window_size: Optional[Union[int, Sequence[int]]] = None,
                 global_blocks: Optional[Sequence[int]] = None,
                 with_cp: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **unexpected: Any) -> None:
        refuse_unexpected('CoAtNet', unexpected)
        super().__init__(init_cfg=pretrained_as_init_cfg('CoAtNet', pretrained, init_cfg))
        self.arch_settings = resolve_arch(arch)
        settings = self.arch_settings
        self.embed_dims = list(settings['embed_dims'])
        depths = settings['depths']
        self.out_indices = check_out_indices(out_indices)
        self.out_channels = [self.embed_dims[i] for i in self.out_indices]
        self.num_stages_run = self.out_indices[-1] + 1
        check_frozen_stages(frozen_stages, '-1 (none), 0 (the stem) or k = 1-4 (the stem and '
                                           'the first k stages)')
        check_drop_path_rate(drop_path_rate)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        pretrained_grid = settings['img_size'] // STRIDES[WINDOWED_STAGE]
        self.attention = attention
        self.window_size, self.global_blocks = _check_attention(
            attention, window_size, global_blocks, depths[WINDOWED_STAGE], pretrained_grid)

        conv_cfg, transformer_cfg = block_configs(settings['style'])
        self.stem = Stem(in_channels, settings['stem_width'], padding=conv_cfg.padding,
                         act_layer=conv_cfg.act_layer, norm_layer=conv_cfg.norm_layer,
                         norm_eps=conv_cfg.norm_eps)
        self.stem.init_weights(scheme='vit_eff')
        rates = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').split(depths)
        stages = []
        channels = self.stem.out_chs
        for index, (depth, dim, stage_rates) in enumerate(zip(depths, self.embed_dims, rates)):
            blocks = []
            for block_index, rate in enumerate(stage_rates.tolist()):
                stride = 2 if block_index == 0 else 1
                if index in ATTENTION_STAGES:
                    # The pretrained grid of stride 32 is half that of stride 16 (7 for 224).
                    grid = pretrained_grid // 2 ** (index - WINDOWED_STAGE)
                    window = (self.window_size if index == WINDOWED_STAGE
                              and block_index not in self.global_blocks else None)
                    blocks.append(TransformerBlock(channels, dim, stride, transformer_cfg, grid,
                                                   rate, window))
                else:
                    block = MbConvBlock(channels, dim, stride=stride, cfg=conv_cfg,
                                        drop_path=rate)
                    block.init_weights(scheme='vit_eff')
                    blocks.append(block)
                channels = dim
            stages.append(Stage(blocks))
        self.stages = nn.ModuleList(stages)
        self._freeze_stages()

    # Loading ----------------------------------------------------------------------------------
    @property
    def ignored_checkpoint_prefixes(self) -> Tuple[str, ...]:
        """Keys of timm's classification weights this module has no use for: the final norm and
        the head."""
        return ('norm.', 'head.')

    @staticmethod
    def arch_of_weights(state_dict: Mapping[str, torch.Tensor]) -> Optional[Union[str, dict]]:
        """The CoAtNet arch of a state dict (see `arch_of`)."""
        return arch_of(state_dict)

    # Freezing ---------------------------------------------------------------------------------
    def _freeze_stages(self) -> None:
        frozen: List[nn.Module] = [self.stem] if self.frozen_stages >= 0 else []
        frozen += list(self.stages[:max(self.frozen_stages, 0)])
        # Stages after the last returned one get no gradient, which DDP refuses by default.
        idle = list(self.stages[self.num_stages_run:])
        freeze(frozen + idle)

    def train(self, mode: bool = True) -> 'CoAtNet':
        super().train(mode)
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    # Forward ------------------------------------------------------------------------------------
    def _run(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and torch.is_grad_enabled():
            return cp.checkpoint(block, x, use_reentrant=False)
        return block(x)

    def forward_stages(self, x: torch.Tensor, num_stages: int = 4) -> List[torch.Tensor]:
        """The maps after each of the first `num_stages` stages, of the input zero-padded at the
        bottom and right to sides that are multiples of 32 (uncropped)."""
        if x.dim() != 4:
            raise ValueError(f'CoAtNet takes a batch of images (B, C, H, W), got shape '
                             f'{tuple(x.shape)}; add the batch dimension: x.unsqueeze(0).')
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % SIZE_DIVISOR, 0, -height % SIZE_DIVISOR))
        x = self.stem(x)
        maps = []
        for stage in self.stages[:num_stages]:
            for block in stage.blocks:
                x = self._run(block, x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """The NCHW maps of `out_indices`, ceil(H / stride) x ceil(W / stride) each: for sides that
        are not multiples of 32, the maps of the zero-padded input, cropped."""
        height, width = x.shape[-2:]
        maps = self.forward_stages(x, self.num_stages_run)
        outputs = []
        for index in self.out_indices:
            rows, columns = (math.ceil(side / STRIDES[index]) for side in (height, width))
            feature = maps[index]
            if feature.shape[-2:] != (rows, columns):
                feature = feature[:, :, :rows, :columns].contiguous()
            outputs.append(feature)
        return tuple(outputs)


@MODELS.register_module()
class CoAtNetClassifier(CoAtNet):
    """CoAtNet with timm's ImageNet head: the final norm `norm`, global average pooling, dropout
    and the linear `head.fc`. Its state dict is timm's classification model's, key for key, so
    timm's weights load into it and its checkpoints initialise `CoAtNet` unchanged.

    Args:
        num_classes: classes of the linear head.
        drop_rate: dropout before the head.
        **kwargs: CoAtNet's arguments but out_indices (the head reads the last stage).
    """

    def __init__(self, arch: Union[str, dict] = 'coatnet_0_rw', num_classes: int = 1000,
                 drop_rate: float = 0.0, **kwargs) -> None:
        if 'out_indices' in kwargs:
            raise TypeError('CoAtNetClassifier takes no out_indices: its head reads the last '
                            'stage. Use type=\'CoAtNet\' for feature maps.')
        if not is_int(num_classes) or num_classes < 1:
            raise ValueError(f'num_classes={num_classes!r}: the head needs at least one class. For '
                             f'features without a head, use the backbone, CoAtNet.')
        super().__init__(arch=arch, **kwargs)
        _, transformer_cfg = block_configs(self.arch_settings['style'])
        self.norm = get_norm_layer(transformer_cfg.norm_layer)(self.embed_dims[3],
                                                               eps=transformer_cfg.norm_eps)
        self.head = ClassifierHead(self.embed_dims[3], num_classes, pool_type='avg',
                                   drop_rate=drop_rate)
        self.num_classes = num_classes

    @property
    def ignored_checkpoint_prefixes(self) -> Tuple[str, ...]:
        return ()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised last map, before pooling (padded inputs included, as timm's model sees
        them)."""
        return self.norm(self.forward_stages(x)[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes)."""
        return self.head(self.forward_features(x))


def _check_attention(attention: str, window_size: Optional[Union[int, Sequence[int]]],
                     global_blocks: Optional[Sequence[int]], depth: int, pretrained_grid: int
                     ) -> Tuple[Optional[Grid], Tuple[int, ...]]:
    """The validated window (None for global attention) and global blocks."""
    if attention not in ATTENTION_MODES:
        raise ValueError(f'attention={attention!r}: use one of {list(ATTENTION_MODES)}.')
    if attention == 'global':
        if window_size is not None or global_blocks is not None:
            raise ValueError(f"window_size and global_blocks apply to attention='window'; with "
                             f"attention='global' every block attends globally: drop them "
                             f"(got window_size={window_size!r}, global_blocks="
                             f"{global_blocks!r}).")
        return None, ()
    global_blocks = (depth - 1, ) if global_blocks is None else as_list(global_blocks)
    if window_size is None:
        window_size = pretrained_grid
    window = (window_size, window_size) if is_int(window_size) else tuple(as_list(window_size))
    if not (len(window) == 2 and all(is_int(side) and side >= 1 for side in window)):
        raise ValueError(f'window_size={window_size!r}: give one int (a square window) or two '
                         f'(rows, columns), each >= 1, e.g. {pretrained_grid} (the pretrained '
                         f'grid at stride 16).')
    if not (isinstance(global_blocks, Sequence)
            and all(is_int(i) and 0 <= i < depth for i in global_blocks)
            and len(set(global_blocks)) == len(global_blocks)):
        raise ValueError(f'global_blocks={global_blocks!r}: give distinct block indices of the '
                         f'stride-16 stage, 0 to {depth - 1}.')
    return (int(window[0]), int(window[1])), tuple(int(i) for i in global_blocks)


# Variants -------------------------------------------------------------------------------------
# timm's two families of `_rw` block settings (its `_rw_coat_cfg` and `_rw_max_cfg`), as keyword
# arguments of its MaxxVitConvCfg and MaxxVitTransformerCfg; each variant changes some of them.
_RW_COAT_CONV = dict(stride_mode='pool', pool_type='avg2', pre_norm_act=True, expand_output=False,
                     output_bias=False, attn_early=False, attn_act_layer='relu',
                     act_layer='silu')
_RW_COAT_TRANSFORMER = dict(expand_first=False, shortcut_bias=True, pool_type='avg2')
_RW_MAX_CONV = dict(stride_mode='dw', pool_type='avg2', expand_output=False, output_bias=False,
                    attn_ratio=1 / 16, act_layer='silu')
_RW_MAX_TRANSFORMER = dict(expand_first=False, pool_type='avg2')

_WIDTHS = {
    'nano': dict(embed_dims=(64, 128, 256, 512), stem_width=(32, 64)),
    '0': dict(embed_dims=(96, 192, 384, 768), stem_width=(32, 64)),
    '2': dict(embed_dims=(128, 256, 512, 1024), stem_width=(64, 128)),
    '3': dict(embed_dims=(192, 384, 768, 1536), stem_width=(96, 192)),
}
_DEEP = (2, 6, 14, 2)


def _variant(widths: str, depths: Sequence[int], conv: dict, transformer: dict) -> dict:
    return dict(**_WIDTHS[widths], depths=tuple(depths), conv=conv, transformer=transformer)


# timm's `coatnet_*_rw` models (model_cfgs in timm/models/maxxvit.py). Not here: the paper-style
# `coatnet_0`-`coatnet_5` and `coatnet_nano_cc` / `coatnext_nano_rw` (other blocks), for which
# timm publishes no weights.
ARCH_SETTINGS: Dict[str, dict] = {
    'coatnet_pico_rw': _variant('nano', (2, 3, 5, 2), dict(
        _RW_MAX_CONV, output_bias=True, attn_ratio=0.25), _RW_MAX_TRANSFORMER),
    'coatnet_nano_rw': _variant('nano', (3, 4, 6, 3), dict(
        _RW_MAX_CONV, stride_mode='pool', output_bias=True, attn_ratio=0.25),
        _RW_MAX_TRANSFORMER),
    'coatnet_0_rw': _variant('0', (2, 3, 7, 2), dict(_RW_COAT_CONV, attn_early=True),
                             dict(_RW_COAT_TRANSFORMER, shortcut_bias=False)),
    'coatnet_1_rw': _variant('0', _DEEP, dict(_RW_COAT_CONV, stride_mode='dw', attn_early=True),
                             dict(_RW_COAT_TRANSFORMER, shortcut_bias=False)),
    'coatnet_2_rw': _variant('2', _DEEP, dict(
        _RW_COAT_CONV, stride_mode='dw', attn_act_layer='silu'), _RW_COAT_TRANSFORMER),
    'coatnet_3_rw': _variant('3', _DEEP, dict(
        _RW_COAT_CONV, stride_mode='dw', attn_act_layer='silu'),
        dict(_RW_COAT_TRANSFORMER, init_values=1e-6)),
    'coatnet_bn_0_rw': _variant('0', (2, 3, 7, 2), dict(
        _RW_COAT_CONV, stride_mode='dw', attn_early=True),
        dict(_RW_COAT_TRANSFORMER, shortcut_bias=False, norm_layer='batchnorm2d')),
    'coatnet_rmlp_nano_rw': _variant('nano', (3, 4, 6, 3), dict(
        _RW_MAX_CONV, output_bias=True, attn_ratio=0.25),
        dict(_RW_MAX_TRANSFORMER, rel_pos_type='mlp', rel_pos_dim=384)),
    'coatnet_rmlp_0_rw': _variant('0', (2, 3, 7, 2), dict(_RW_COAT_CONV, stride_mode='dw'),
                                  dict(_RW_COAT_TRANSFORMER, rel_pos_type='mlp')),
    'coatnet_rmlp_1_rw': _variant('0', _DEEP, dict(_RW_COAT_CONV, pool_type='max',
                                                   attn_early=True),
                                  dict(_RW_COAT_TRANSFORMER, pool_type='max', shortcut_bias=False,
                                       rel_pos_type='mlp', rel_pos_dim=384)),
    'coatnet_rmlp_1_rw2': _variant('0', _DEEP, dict(_RW_COAT_CONV, stride_mode='dw'),
                                   dict(_RW_COAT_TRANSFORMER, rel_pos_type='mlp')),
    'coatnet_rmlp_2_rw': _variant('2', _DEEP, dict(
        _RW_COAT_CONV, stride_mode='dw', attn_act_layer='silu'),
        dict(_RW_COAT_TRANSFORMER, init_values=1e-6, rel_pos_type='mlp')),
    'coatnet_rmlp_3_rw': _variant('3', _DEEP, dict(
        _RW_COAT_CONV, stride_mode='dw', attn_act_layer='silu'),
        dict(_RW_COAT_TRANSFORMER, init_values=1e-6, rel_pos_type='mlp')),
}
# timm's ImageNet weights of each variant on the Hugging Face Hub, the ImageNet-1k classifier
# first (in12k: ImageNet-12k pretraining, 11821 classes; ft_in1k: then fine-tuned on 1k).
PRETRAINED: Dict[str, Tuple[str, ...]] = {
    'coatnet_nano_rw': ('hf-hub:timm/coatnet_nano_rw_224.sw_in1k',),
    'coatnet_0_rw': ('hf-hub:timm/coatnet_0_rw_224.sw_in1k',),
    'coatnet_1_rw': ('hf-hub:timm/coatnet_1_rw_224.sw_in1k',),
    'coatnet_2_rw': ('hf-hub:timm/coatnet_2_rw_224.sw_in12k_ft_in1k',
                     'hf-hub:timm/coatnet_2_rw_224.sw_in12k'),
    'coatnet_3_rw': ('hf-hub:timm/coatnet_3_rw_224.sw_in12k',),
    'coatnet_bn_0_rw': ('hf-hub:timm/coatnet_bn_0_rw_224.sw_in1k',),
    'coatnet_rmlp_nano_rw': ('hf-hub:timm/coatnet_rmlp_nano_rw_224.sw_in1k',),
    'coatnet_rmlp_1_rw': ('hf-hub:timm/coatnet_rmlp_1_rw_224.sw_in1k',),
    'coatnet_rmlp_1_rw2': ('hf-hub:timm/coatnet_rmlp_1_rw2_224.sw_in12k_ft_in1k',
                           'hf-hub:timm/coatnet_rmlp_1_rw2_224.sw_in12k'),
    'coatnet_rmlp_2_rw': ('hf-hub:timm/coatnet_rmlp_2_rw_224.sw_in12k_ft_in1k',
                          'hf-hub:timm/coatnet_rmlp_2_rw_224.sw_in1k',
                          'hf-hub:timm/coatnet_rmlp_2_rw_224.sw_in12k',
                          'hf-hub:timm/coatnet_rmlp_2_rw_384.sw_in12k_ft_in1k'),
}
# The input normalisation the weights were trained with, in 0-255 pixel values as mmdet's and
# mmseg's data preprocessors take them: timm's (0.5, 0.5, 0.5) for all but coatnet_bn_0_rw,
# which used the usual ImageNet mean and std.
_HALF = ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5))
PIXEL_MEAN_STD: Dict[str, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {
    arch: _HALF for arch in ARCH_SETTINGS}
PIXEL_MEAN_STD['coatnet_bn_0_rw'] = ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))

_PRETRAINED_SIZE = 224
_ARCH_KEYS = ('embed_dims', 'depths', 'stem_width', 'style')


def arch_sizes(name: str) -> Tuple[int, ...]:
    """The input sizes timm names a variant at (its `_224`, `_384` suffixes)."""
    sizes = {int(hub_id.split('.')[0].rsplit('_', 1)[1]) for hub_id in PRETRAINED.get(name, ())}
    return tuple(sorted(sizes | {_PRETRAINED_SIZE}))


def block_configs(style: str) -> Tuple[MaxxVitConvCfg, MaxxVitTransformerCfg]:
    """timm's MBConv and transformer block settings of a variant."""
    settings = ARCH_SETTINGS[style]
    return MaxxVitConvCfg(**settings['conv']), MaxxVitTransformerCfg(**settings['transformer'])


def _split_size(name: str) -> Tuple[str, int]:
    """'coatnet_0_rw_224' -> ('coatnet_0_rw', 224); a name without a size gets 224."""
    base, _, size = name.rpartition('_')
    if size.isdigit() and base in ARCH_SETTINGS and int(size) in arch_sizes(base):
        return base, int(size)
    if name in ARCH_SETTINGS:
        return name, _PRETRAINED_SIZE
    names = [f'{arch}[_{"|_".join(map(str, arch_sizes(arch)))}]' for arch in ARCH_SETTINGS]
    raise ValueError(f'Unknown CoAtNet arch {name!r}: choose one of {names} or give a dict with '
                     f'keys {list(_ARCH_KEYS)}.')


def resolve_arch(arch: Union[str, dict]) -> dict:
    """A variant name or a custom dict -> validated settings: embed_dims, depths, stem_width (two
    ints), style (a variant name) and img_size (the pretrained input size, which sizes the
    relative position tables)."""
    if isinstance(arch, str):
        name, size = _split_size(arch)
        settings = ARCH_SETTINGS[name]
        return dict(embed_dims=list(settings['embed_dims']), depths=list(settings['depths']),
                    stem_width=tuple(settings['stem_width']), style=name, img_size=size)
    if not isinstance(arch, dict):
        raise TypeError(f'CoAtNet arch must be a name or a dict, got {type(arch).__name__}.')
    missing = [key for key in _ARCH_KEYS if key not in arch]
    unknown = [key for key in arch if key not in _ARCH_KEYS]
    if missing or unknown:
        raise ValueError(f'CoAtNet arch dict: missing keys {missing}, unknown keys {unknown}; '
                         f'it takes exactly {list(_ARCH_KEYS)}.')
    style = arch['style']
    if not isinstance(style, str):
        raise ValueError(f'CoAtNet arch style={style!r}: give the name of the variant whose blocks '
                         f'to use, e.g. \'coatnet_0_rw\'.')
    name, size = _split_size(style)
    settings = dict(style=name, img_size=size)
    for key in ('embed_dims', 'depths'):
        values = settings[key] = as_list(arch[key])
        if not (isinstance(values, Sequence) and not isinstance(values, str) and len(values) == 4
                and all(is_int(v) and v >= 1 for v in values)):
            raise ValueError(f'CoAtNet arch {key} needs 4 ints >= 1 (one per stage), got '
                             f'{values!r}.')
    stem = as_list(arch['stem_width'])
    stem = [stem] if is_int(stem) else stem
    if not (isinstance(stem, Sequence) and len(stem) in (1, 2)
            and all(is_int(v) and v >= 1 for v in stem)):
        raise ValueError(f"CoAtNet arch stem_width needs 1 or 2 ints >= 1 (the stem's two "
                         f"convolutions), got {arch['stem_width']!r}.")
    settings['stem_width'] = (stem[0], stem[-1])
    dim_head = block_configs(name)[1].dim_head
    # The attention of each transformer block runs at its input width: the widths entering and
    # leaving stages 2 and 3 are split into heads of dim_head channels.
    uneven = [dim for dim in settings['embed_dims'][1:] if dim % dim_head]
    if uneven:
        raise ValueError(f'CoAtNet arch embed_dims {uneven} are not multiples of the attention '
                         f'head width {dim_head} (stages 2-3 and their input); use multiples of '
                         f'{dim_head}.')
    return settings


# Reading the arch back from weights (a mismatch names the checkpoint's own arch) -------------
def _signature(state_dict: Mapping[str, torch.Tensor]) -> frozenset:
    """The names and shapes of a state dict's backbone weights (classifier norm and head
    aside)."""
    return frozenset((key, tuple(value.shape)) for key, value in state_dict.items()
                     if key.startswith(('stem.', 'stages.')))


@functools.lru_cache(maxsize=256)
def _signature_of(arch: Union[str, Tuple[Tuple[str, Any], ...]]) -> frozenset:
    settings = arch if isinstance(arch, str) else dict(arch)
    with torch.device('meta'):  # shapes only
        return _signature(CoAtNet(settings).state_dict())


def arch_settings_of(state_dict: Mapping[str, torch.Tensor]) -> Optional[dict]:
    """embed_dims, depths and stem_width of a CoAtNet state dict, or None when it is not a
    CoAtNet's."""
    try:
        stem_width = [state_dict[f'stem.conv{i}.weight'].shape[0] for i in (1, 2)]
        depths = [len({key.split('.')[3] for key in state_dict
                       if key.startswith(f'stages.{i}.blocks.')}) for i in range(4)]
        embed_dims = []
        for i in range(4):
            block = f'stages.{i}.blocks.0.'
            output = (f'{block}mlp.fc2.weight' if f'{block}mlp.fc2.weight' in state_dict
                      else f'{block}conv3_1x1.weight')
            embed_dims.append(state_dict[output].shape[0])
    except KeyError:
        return None
    return dict(embed_dims=embed_dims, depths=depths, stem_width=stem_width)


def arch_of(state_dict: Mapping[str, torch.Tensor]) -> Optional[Union[str, dict]]:
    """A CoAtNet state dict's arch: the name of the variant it is, else the dict of its widths
    with the first style its weights fit (None when it is no CoAtNet's). Variants that differ
    only in what holds no weights (pooling, activation, stride placement) cannot be told apart:
    the first in `ARCH_SETTINGS` is named."""
    widths = arch_settings_of(state_dict)
    if widths is None:
        return None
    signature = _signature(state_dict)
    for name, settings in ARCH_SETTINGS.items():
        if ([list(settings[key]) for key in ('embed_dims', 'depths', 'stem_width')]
                == [widths[key] for key in ('embed_dims', 'depths', 'stem_width')]
                and _signature_of(name) == signature):
            return name
    for style in ARCH_SETTINGS:
        arch = dict(widths, style=style)
        try:
            fits = _signature_of(tuple((key, tuple(value) if isinstance(value, list) else value)
                                       for key, value in arch.items())) == signature
        except ValueError:  # widths this style cannot build
            continue
        if fits:
            return arch
    return None
