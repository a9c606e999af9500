"""CoaT: Co-Scale Conv-Attentional Image Transformers, as a dense-prediction backbone.

Paper: Weijian Xu, Yifan Xu, Tyler Chang, Zhuowen Tu, "Co-Scale Conv-Attentional Image
Transformers", ICCV 2021, https://arxiv.org/abs/2104.06399.
Official code: https://github.com/mlpc-ucsd/CoaT (Apache-2.0). This is an independent
implementation, licensed Apache-2.0 like the original.

Attribute names and module sharing follow the official model exactly, so official classification
checkpoints, timm's weights and official mmdet 2.x detector checkpoints load without renaming:
one `cpe{i}` / `crpe{i}` per scale shared by every block of that scale, and one MLP shared by scales
2-4 of each parallel block (`mlp2 is mlp3 is mlp4`). The forward pass is free to differ as long as
its numbers do not: it resizes to explicit sizes in the cross-scale fusion so any input size works.

Layout: blocks, then the backbone (`CoaT`), then the classifier (`CoaTClassifier`), then the variant
registry (`ARCH_SETTINGS`) and the reading of an arch from weights (`arch_of`). Reading and
strictly loading checkpoint files lives in `coat_backbone.checkpoint`.
"""
import math
from itertools import accumulate
from numbers import Real
from operator import mul
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from einops import rearrange
from mmengine.registry import MODELS
from timm.layers import DropPath, Mlp, trunc_normal_

from .common import (DenseBackbone, as_list, check_drop_path_rate, check_frozen_stages,
                     check_out_indices, freeze, is_int, pretrained_as_init_cfg, refuse_unexpected)

Size = Tuple[int, int]

# Patch size of each scale's embedding, and the resulting stride of each scale.
PATCH_SIZES = (4, 2, 2, 2)
STRIDES = tuple(accumulate(PATCH_SIZES, mul))  # (4, 8, 16, 32)
# CRPE kernel size -> number of heads using it; the same for every published variant.
CRPE_WINDOWS: Dict[int, int] = {3: 2, 5: 3, 7: 3}
# LayerNorm eps inside the blocks (the patch embeddings keep PyTorch's default, 1e-5).
BLOCK_NORM_EPS = 1e-6


def tokens_to_map(tokens: torch.Tensor, size: Size) -> torch.Tensor:
    """(B, 1 + H*W, C) tokens with a leading class token -> (B, C, H, W) image map."""
    # The reference's view: einops' can have other strides in size-1 dimensions (B = 1, a grid
    # one token wide), which sends the convolutions to other kernels that round differently.
    batch, _, channels = tokens.shape
    return tokens[:, 1:].transpose(1, 2).reshape(batch, channels, *size)


def map_to_tokens(feature_map: torch.Tensor, cls_token: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) image map plus a (B, 1, C) class token -> (B, 1 + H*W, C) tokens."""
    return torch.cat((cls_token, rearrange(feature_map, 'b c h w -> b (h w) c')), dim=1)


def grid_sizes(height: int, width: int) -> List[Size]:
    """Token grid (rows, columns) of each of the four scales for an input of this size."""
    sizes = []
    rows, columns = height, width
    for patch in PATCH_SIZES:
        rows, columns = rows // patch, columns // patch
        if rows < 1 or columns < 1:
            raise ValueError(f'The input {height}x{width} is too small for CoaT: every side needs '
                             f'at least 32 pixels (four scales, total stride 32); resize or pad '
                             f'it.')
        sizes.append((rows, columns))
    return sizes


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding: strided conv, flatten, LayerNorm (default eps)."""

    def __init__(self, patch_size: int, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Size]:
        x = self.proj(x)
        size = (x.shape[2], x.shape[3])
        return self.norm(rearrange(x, 'b c h w -> b (h w) c')), size


class ConvPosEnc(nn.Module):
    """Convolutional position encoding: depthwise 3x3 conv with a residual, image tokens only."""

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: torch.Tensor, size: Size) -> torch.Tensor:
        feature_map = tokens_to_map(x, size)
        return map_to_tokens(self.proj(feature_map) + feature_map, x[:, :1])


class ConvRelPosEnc(nn.Module):
    """Convolutional relative position encoding: Q * depthwise-conv(V) with per-head windows.

    The heads are split into groups (2/3/3 heads with windows 3/5/7); each group has its own
    depthwise conv, kept as `conv_list` so that official weights load under their own names.
    """

    def __init__(self, head_dim: int, num_heads: int, windows: Dict[int, int]) -> None:
        super().__init__()
        if sum(windows.values()) != num_heads:
            raise ValueError(f'CRPE windows {windows} split {sum(windows.values())} heads, but the '
                             f'attention has {num_heads}; make the head counts add up.')
        self.channel_splits = [heads * head_dim for heads in windows.values()]
        self.conv_list = nn.ModuleList(
            nn.Conv2d(channels, channels, window, padding=window // 2, groups=channels)
            for window, channels in zip(windows, self.channel_splits))

    def forward(self, q: torch.Tensor, v: torch.Tensor, size: Size) -> torch.Tensor:
        """q, v: (B, heads, 1 + H*W, head_dim). Returns the (B, heads, 1 + H*W, head_dim) term,
        zero in the class-token row."""
        # The reference's view, not einops': see tokens_to_map.
        batch, num_heads, _, head_dim = v.shape
        v_map = v[:, :, 1:].transpose(-1, -2).reshape(batch, num_heads * head_dim, *size)
        v_groups = torch.split(v_map, self.channel_splits, dim=1)
        conv_v = torch.cat([conv(group) for conv, group in zip(self.conv_list, v_groups)], dim=1)
        conv_v = rearrange(conv_v, 'b (heads d) h w -> b heads (h w) d', heads=num_heads)
        return F.pad(q[:, :, 1:] * conv_v, (0, 0, 1, 0))


class FactorAttnConvRelPosEnc(nn.Module):
    """Factorized attention softmax(K)^T V, applied to Q, plus the convolutional relative position
    encoding. The N x N attention matrix is never formed, so cost is linear in the tokens."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool,
                 shared_crpe: ConvRelPosEnc) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.crpe = shared_crpe

    def forward(self, x: torch.Tensor, size: Size) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), 'b n (qkv heads d) -> qkv b heads n d', qkv=3,
                            heads=self.num_heads)
        context = k.softmax(dim=2).transpose(-1, -2) @ v  # (B, heads, head_dim, head_dim)
        out = self.scale * (q @ context) + self.crpe(q, v, size)
        return self.proj(rearrange(out, 'b heads n d -> b n (heads d)'))


class SerialBlock(nn.Module):
    """One scale's block: shared CPE, conv-attention and MLP, each with pre-norm and residual."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool,
                 drop_path: float, shared_cpe: ConvPosEnc, shared_crpe: ConvRelPosEnc) -> None:
        super().__init__()
        self.cpe = shared_cpe
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        self.factoratt_crpe = FactorAttnConvRelPosEnc(dim, num_heads, qkv_bias, shared_crpe)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, size: Size) -> torch.Tensor:
        x = self.cpe(x, size)
        x = x + self.drop_path(self.factoratt_crpe(self.norm1(x), size))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _resize_tokens(tokens: torch.Tensor, size: Size, target: Size) -> torch.Tensor:
    """Bilinearly resize the image part of `tokens` to `target`; the class token is kept as is."""
    resized = F.interpolate(tokens_to_map(tokens, size), size=target, mode='bilinear',
                            align_corners=False)
    return map_to_tokens(resized, tokens[:, :1])


# For each of scales 2-4, the other scales added to it, in the official model's order: float
# addition is not associative, and this order keeps float32 outputs equal to the reference's.
_FUSION_ORDER = ((1, 2), (2, 0), (1, 0))


class ParallelBlock(nn.Module):
    """Co-scale block over scales 2-4: per-scale conv-attention, cross-scale fusion of the attention
    outputs (class-token rows summed too), then one MLP shared by the three scales.

    Scale 1 is not part of it; the scale CPEs are applied by the caller, as in the official model.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool,
                 drop_path: float, shared_crpes: Sequence[ConvRelPosEnc]) -> None:
        super().__init__()
        for scale, crpe in zip((2, 3, 4), shared_crpes):
            setattr(self, f'norm1{scale}', nn.LayerNorm(dim, eps=BLOCK_NORM_EPS))
            setattr(self, f'factoratt_crpe{scale}',
                    FactorAttnConvRelPosEnc(dim, num_heads, qkv_bias, crpe))
            setattr(self, f'norm2{scale}', nn.LayerNorm(dim, eps=BLOCK_NORM_EPS))
            # One per scale (no weights), so that freezing a scale also turns off its drop path.
            setattr(self, f'drop_path{scale}',
                    DropPath(drop_path) if drop_path > 0 else nn.Identity())
        self.mlp2 = self.mlp3 = self.mlp4 = Mlp(in_features=dim,
                                                hidden_features=int(dim * mlp_ratio))

    def forward(self, xs: List[torch.Tensor], sizes: List[Size]) -> List[torch.Tensor]:
        """xs, sizes: the tokens and grid sizes of scales 2, 3 and 4."""
        attended = [getattr(self, f'factoratt_crpe{scale}')(getattr(self, f'norm1{scale}')(x), size)
                    for scale, x, size in zip((2, 3, 4), xs, sizes)]
        fused = []
        for target, sources in enumerate(_FUSION_ORDER):
            total = attended[target]
            for source in sources:
                total = total + _resize_tokens(attended[source], sizes[source], sizes[target])
            fused.append(total)
        outputs = []
        for scale, x, f in zip((2, 3, 4), xs, fused):
            drop_path = getattr(self, f'drop_path{scale}')
            x = x + drop_path(f)
            outputs.append(x + drop_path(getattr(self, f'mlp{scale}')(
                getattr(self, f'norm2{scale}')(x))))
        return outputs


@MODELS.register_module()
class CoaT(DenseBackbone):
    """CoaT backbone: four scales of serial blocks (strides 4/8/16/32), then, for the non-Lite
    variants, parallel co-scale blocks over scales 2-4.

    Args:
        arch: a name from `ARCH_SETTINGS` or a dict with keys embed_dims, serial_depths,
            parallel_depth, num_heads and mlp_ratios.
        in_channels: input image channels.
        out_indices: which scales (0-3, strides 4/8/16/32) to return; an int returns one. They
            come from high to low resolution whatever the order given, as mmdet's backbones do.
            Modules no returned scale depends on keep their weights (checkpoints load and save
            whole) but do not train, and do not run where they come after the last returned
            scale: Lite archs stop there, the others run all four scales for their parallel
            blocks (or one, for out_indices=0).
        qkv_bias: bias in the attention's qkv projection (True in every published variant).
        drop_path_rate: stochastic depth, the SAME rate for every block (official semantics).
        frozen_stages: number of leading scales to freeze (-1 or 0: none, 4: all). Freezing scale i
            freezes its patch embedding, class token, CPE, CRPE and serial blocks. In the parallel
            blocks it freezes the scale's own norms and attention and turns off its drop path; the
            MLP they share across scales 2-4 is frozen only when all of 2-4 are (frozen_stages=4).
        with_cp: gradient checkpointing of every block (non-reentrant, so DDP copes with the
            shared modules), trading compute for activation memory. It applies whenever autograd
            records, in eval mode too (Grad-CAM, attacks on the input), as in mmdet's backbones.
        pretrained: a checkpoint path, as mmseg passes it; same as init_cfg Pretrained.
        init_cfg: `dict(type='Pretrained', checkpoint=PATH)` (alone or in a list) loads any
            format that `coat_backbone.checkpoint` accepts, optionally with `prefix=` and, for a
            classifier fine-tuned to another class count, `new_head=True`; anything else goes to
            mmengine.
        **unexpected: refused, naming them: mostly another backbone's settings (ResNet's depth,
            num_stages, ...) merged in from a base config that needs `_delete_=True`.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'lite_small',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 qkv_bias: bool = True,
                 drop_path_rate: float = 0.0,
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **unexpected: Any) -> None:
        refuse_unexpected('CoaT', unexpected)
        super().__init__(init_cfg=pretrained_as_init_cfg('CoaT', pretrained, init_cfg))
        self.arch_settings = resolve_arch(arch)
        embed_dims = self.arch_settings['embed_dims']
        serial_depths = self.arch_settings['serial_depths']
        mlp_ratios = self.arch_settings['mlp_ratios']
        num_heads = self.arch_settings['num_heads']
        self.embed_dims = list(embed_dims)
        self.parallel_depth = self.arch_settings['parallel_depth']
        self.out_indices = check_out_indices(out_indices)
        self.out_channels = [embed_dims[i] for i in self.out_indices]
        # Scales after the last returned are not run, unless parallel blocks mix them into it.
        self.num_scales_run = (4 if self.parallel_depth > 0 and self.out_indices[-1] > 0
                               else self.out_indices[-1] + 1)
        check_frozen_stages(frozen_stages, '-1 or 0 (none) up to 4 (all scales)')
        check_drop_path_rate(drop_path_rate)
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp

        for i in range(4):
            scale = i + 1
            setattr(self, f'patch_embed{scale}', PatchEmbed(
                patch_size=PATCH_SIZES[i],
                in_channels=in_channels if i == 0 else embed_dims[i - 1],
                embed_dim=embed_dims[i]))
            setattr(self, f'cls_token{scale}', nn.Parameter(torch.zeros(1, 1, embed_dims[i])))
            cpe = ConvPosEnc(embed_dims[i])
            crpe = ConvRelPosEnc(embed_dims[i] // num_heads, num_heads, CRPE_WINDOWS)
            setattr(self, f'cpe{scale}', cpe)
            setattr(self, f'crpe{scale}', crpe)
            setattr(self, f'serial_blocks{scale}', nn.ModuleList(
                SerialBlock(embed_dims[i], num_heads, mlp_ratios[i], qkv_bias, drop_path_rate,
                            shared_cpe=cpe, shared_crpe=crpe)
                for _ in range(serial_depths[i])))
        if self.parallel_depth > 0:
            self.parallel_blocks = nn.ModuleList(
                ParallelBlock(embed_dims[1], num_heads, mlp_ratios[1], qkv_bias, drop_path_rate,
                              shared_crpes=(self.crpe2, self.crpe3, self.crpe4))
                for _ in range(self.parallel_depth))
        self._reset_parameters()
        self._freeze_stages()

    # Initialisation and loading -------------------------------------------------------------
    def _reset_parameters(self) -> None:
        """The official initialisation (convs keep PyTorch's default)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for i in range(1, 5):
            trunc_normal_(getattr(self, f'cls_token{i}'), std=0.02)

    @property
    def ignored_checkpoint_prefixes(self) -> Tuple[str, ...]:
        """Keys of official checkpoints this module has no use for: the classification head."""
        return ('norm1.', 'norm2.', 'norm3.', 'norm4.', 'aggregate.', 'head.')

    # What coat_backbone.checkpoint asks a model family, to say what a mismatched file is.
    arch_family = 'CoaT'
    input_weight_key = 'patch_embed1.proj.weight'

    @staticmethod
    def arch_of_weights(state_dict: Mapping[str, torch.Tensor]) -> Optional[Union[str, dict]]:
        """The CoaT arch of a state dict (see `arch_of`)."""
        return arch_of(state_dict)

    # Freezing ---------------------------------------------------------------------------------
    def _frozen_modules(self) -> List[nn.Module]:
        modules: List[nn.Module] = []
        for scale in range(1, max(self.frozen_stages, 0) + 1):
            modules += [getattr(self, f'{name}{scale}')
                        for name in ('patch_embed', 'cpe', 'crpe', 'serial_blocks')]
            if self.parallel_depth > 0 and scale >= 2:
                for block in self.parallel_blocks:
                    modules += [getattr(block, f'{name}{scale}')
                                for name in ('norm1', 'factoratt_crpe', 'norm2', 'drop_path')]
        if self.parallel_depth > 0 and self.frozen_stages == 4:
            modules += [block.mlp2 for block in self.parallel_blocks]
        return modules

    def _idle_modules(self) -> List[nn.Module]:
        """Modules that no returned scale depends on (see out_indices). They would get no
        gradient, which DistributedDataParallel refuses by default, so they do not train."""
        modules: List[nn.Module] = []
        for scale in range(self.num_scales_run + 1, 5):
            modules += [getattr(self, f'{name}{scale}')
                        for name in ('patch_embed', 'cpe', 'crpe', 'serial_blocks')]
        if self.parallel_depth > 0 and self.num_scales_run < 4:
            modules.append(self.parallel_blocks)
        elif self.parallel_depth > 0:
            # The last parallel block's MLP branch of a scale only feeds that scale's output.
            modules += [getattr(self.parallel_blocks[-1], f'norm2{scale}')
                        for scale in (2, 3, 4) if scale - 1 not in self.out_indices]
        return modules

    def _freeze_stages(self) -> None:
        freeze(self._frozen_modules() + self._idle_modules())
        for scale in range(1, 5):
            if scale <= self.frozen_stages or scale > self.num_scales_run:
                getattr(self, f'cls_token{scale}').requires_grad = False

    # Forward ------------------------------------------------------------------------------------
    def _run(self, block: nn.Module, *args):
        if self.with_cp and torch.is_grad_enabled():
            return cp.checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def _parallel_step(self, block: ParallelBlock, xs: List[torch.Tensor],
                       sizes: List[Size]) -> List[torch.Tensor]:
        xs = [getattr(self, f'cpe{scale}')(x, size) for scale, x, size in zip((2, 3, 4), xs, sizes)]
        return block(xs, sizes)

    def forward_tokens(self, x: torch.Tensor, num_scales: int = 4
                       ) -> Tuple[List[torch.Tensor], List[Size]]:
        """The first `num_scales` scales (all four by default) as (B, 1 + H*W, C) tokens (class
        token first) and their grid sizes. The parallel blocks of non-Lite archs need scales 2-4,
        so those run 1 or 4 scales."""
        if x.dim() != 4:
            raise ValueError(f'CoaT takes a batch of images (B, C, H, W), got shape '
                             f'{tuple(x.shape)}; add the batch dimension: x.unsqueeze(0).')
        grid_sizes(*x.shape[-2:])  # a clear error for inputs under 32 pixels
        if num_scales not in ((1, 4) if self.parallel_depth > 0 else (1, 2, 3, 4)):
            raise ValueError(f'num_scales={num_scales}: a Lite arch runs 1 to 4 scales, the '
                             f'others 1 or 4 (their parallel blocks mix scales 2-4).')
        tokens: List[torch.Tensor] = []
        sizes: List[Size] = []
        for i in range(num_scales):
            scale = i + 1
            if i > 0:
                x = tokens_to_map(tokens[-1], sizes[-1]).contiguous()
            x, size = getattr(self, f'patch_embed{scale}')(x)
            cls_token = getattr(self, f'cls_token{scale}').expand(x.shape[0], -1, -1)
            x = torch.cat((cls_token, x), dim=1)
            for block in getattr(self, f'serial_blocks{scale}'):
                x = self._run(block, x, size)
            tokens.append(x)
            sizes.append(size)
        if self.parallel_depth > 0 and num_scales == 4:
            coscale = tokens[1:]
            for block in self.parallel_blocks:
                coscale = self._run(self._parallel_step, block, coscale, sizes[1:])
            tokens = tokens[:1] + list(coscale)
        return tokens, sizes

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Returns the NCHW maps of `out_indices` (class tokens removed, no output norm)."""
        tokens, sizes = self.forward_tokens(x, self.num_scales_run)
        return tuple(tokens_to_map(tokens[i], sizes[i]).contiguous() for i in self.out_indices)


@MODELS.register_module()
class CoaTClassifier(CoaT):
    """CoaT with the official ImageNet head: the class token of scale 4 after `norm4` (Lite), or the
    class tokens of scales 2-4 after `norm2`-`norm4` mixed by the `aggregate` Conv1d (non-Lite),
    then a linear `head`. Its state dict is the official classification checkpoint, key for key.

    Args:
        num_classes: classes of the linear head.
        drop_rate: dropout before the head.
        **kwargs: CoaT's arguments but out_indices (the head reads the class tokens).
    """

    def __init__(self, arch: Union[str, dict] = 'lite_small', num_classes: int = 1000,
                 drop_rate: float = 0.0, **kwargs) -> None:
        if 'out_indices' in kwargs:
            raise TypeError('CoaTClassifier takes no out_indices: its head reads the class tokens '
                            'of the last scales. Use type=\'CoaT\' for feature maps.')
        if not is_int(num_classes) or num_classes < 1:
            raise ValueError(f'num_classes={num_classes!r}: the head needs at least one class. For '
                             f'features without a head, use the backbone, CoaT.')
        super().__init__(arch=arch, **kwargs)
        dims = self.embed_dims
        if self.parallel_depth > 0:
            self.norm2 = nn.LayerNorm(dims[1], eps=BLOCK_NORM_EPS)
            self.norm3 = nn.LayerNorm(dims[2], eps=BLOCK_NORM_EPS)
            self.aggregate = nn.Conv1d(3, 1, kernel_size=1)
        self.norm4 = nn.LayerNorm(dims[3], eps=BLOCK_NORM_EPS)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(dims[3], num_classes)
        self.num_classes = num_classes
        nn.init.zeros_(self.head.bias)
        trunc_normal_(self.head.weight, std=0.02)

    @property
    def ignored_checkpoint_prefixes(self) -> Tuple[str, ...]:
        # The official model builds norm1 (and, for Lite, norm2/norm3) but never uses them.
        return ('norm1.',) if self.parallel_depth > 0 else ('norm1.', 'norm2.', 'norm3.')

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled (B, C) representation fed to the head."""
        tokens, _ = self.forward_tokens(x)
        if self.parallel_depth == 0:
            return self.norm4(tokens[3][:, 0])
        cls_tokens = torch.stack([self.norm2(tokens[1][:, 0]), self.norm3(tokens[2][:, 0]),
                                  self.norm4(tokens[3][:, 0])], dim=1)
        return self.aggregate(cls_tokens).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes)."""
        return self.head(self.head_drop(self.forward_features(x)))


_COAT = dict(serial_depths=(2, 2, 2, 2), parallel_depth=6, num_heads=8, mlp_ratios=(4, 4, 4, 4))
_LITE = dict(parallel_depth=0, num_heads=8, mlp_ratios=(8, 8, 4, 4))

ARCH_SETTINGS: Dict[str, dict] = {
    'tiny': dict(embed_dims=(152, 152, 152, 152), **_COAT),
    'mini': dict(embed_dims=(152, 216, 216, 216), **_COAT),
    'small': dict(embed_dims=(152, 320, 320, 320), **_COAT),
    'lite_tiny': dict(embed_dims=(64, 128, 256, 320), serial_depths=(2, 2, 2, 2), **_LITE),
    'lite_mini': dict(embed_dims=(64, 128, 320, 512), serial_depths=(2, 2, 2, 2), **_LITE),
    'lite_small': dict(embed_dims=(64, 128, 320, 512), serial_depths=(3, 4, 6, 3), **_LITE),
    'lite_medium': dict(embed_dims=(128, 256, 320, 512), serial_depths=(3, 6, 10, 8),
                        **dict(_LITE, mlp_ratios=(4, 4, 4, 4))),
}
_ARCH_KEYS = ('embed_dims', 'serial_depths', 'parallel_depth', 'num_heads', 'mlp_ratios')
# The official ImageNet-1k weights of each variant, as timm publishes them on the Hugging Face Hub
# (lite_medium also fine-tuned at 384: hf-hub:timm/coat_lite_medium_384.in1k).
PRETRAINED: Dict[str, str] = {arch: f'hf-hub:timm/coat_{arch}.in1k' for arch in ARCH_SETTINGS}


def resolve_arch(arch: Union[str, dict]) -> dict:
    """A variant name or a custom dict -> validated settings (see `ARCH_SETTINGS`)."""
    if isinstance(arch, str):
        if arch not in ARCH_SETTINGS:
            raise ValueError(f'Unknown CoaT arch {arch!r}: choose one of {sorted(ARCH_SETTINGS)} '
                             f'or give a dict with keys {list(_ARCH_KEYS)}.')
        return dict(ARCH_SETTINGS[arch])
    if not isinstance(arch, dict):
        raise TypeError(f'CoaT arch must be a name or a dict, got {type(arch).__name__}.')
    missing = [key for key in _ARCH_KEYS if key not in arch]
    unknown = [key for key in arch if key not in _ARCH_KEYS]
    if missing or unknown:
        raise ValueError(f'CoaT arch dict: missing keys {missing}, unknown keys {unknown}; '
                         f'it takes exactly {list(_ARCH_KEYS)}.')
    settings = dict(arch)
    # Every scale's modules must take part in the forward: an empty scale would leave its
    # CPE/CRPE without gradients, which DistributedDataParallel refuses by default.
    for key, wanted, valid in (('embed_dims', 'ints >= 1', lambda v: is_int(v) and v >= 1),
                               ('serial_depths', 'ints >= 1', lambda v: is_int(v) and v >= 1),
                               ('mlp_ratios', 'numbers > 0', lambda v: isinstance(v, Real)
                                and not isinstance(v, bool) and v > 0)):
        values = settings[key] = as_list(settings[key])
        if not (isinstance(values, Sequence) and not isinstance(values, str) and len(values) == 4
                and all(valid(v) for v in values)):
            raise ValueError(f'CoaT arch {key} needs 4 {wanted} (one per scale), got {values!r}.')
    if not (is_int(settings['parallel_depth']) and settings['parallel_depth'] >= 0):
        raise ValueError(f"CoaT arch parallel_depth needs an int >= 0 (0: Lite), got "
                         f"{settings['parallel_depth']!r}.")
    heads = settings['num_heads']
    if not (is_int(heads) and heads == sum(CRPE_WINDOWS.values())):
        raise ValueError(f'CoaT arch num_heads={heads!r}: the CRPE windows {CRPE_WINDOWS} split '
                         f'{sum(CRPE_WINDOWS.values())} heads; use num_heads=8.')
    narrow = [(dim, ratio) for dim, ratio in zip(settings['embed_dims'], settings['mlp_ratios'])
              if int(dim * ratio) < 1]
    if narrow:
        raise ValueError(f'CoaT arch (embed_dim, mlp_ratio) pairs {narrow} give an MLP without '
                         f'hidden units; raise mlp_ratios.')
    bad = [dim for dim in settings['embed_dims'] if dim % heads]
    if bad:
        raise ValueError(f'CoaT arch embed_dims {bad} are not divisible by num_heads={heads}.')
    dims, ratios = settings['embed_dims'], settings['mlp_ratios']
    if settings['parallel_depth'] > 0 and not (
            dims[1] == dims[2] == dims[3] and ratios[1] == ratios[2] == ratios[3]):
        raise ValueError('CoaT parallel blocks share one MLP across scales 2-4, so they need '
                         'embed_dims[1] == [2] == [3] and mlp_ratios[1] == [2] == [3]; '
                         'set parallel_depth=0 for a Lite-style model.')
    return settings


# Reading the arch back from weights (tools build the model a checkpoint needs; a mismatch names
# the checkpoint's own arch) -----------------------------------------------------------------
def _mlp_ratio(hidden: int, dim: int) -> Union[int, float]:
    """The mlp_ratio for which CoaT's `int(dim * mlp_ratio)` gives `hidden` back."""
    ratio = hidden / dim
    while int(dim * ratio) < hidden:  # hidden / dim can round below the value it came from
        ratio = math.nextafter(ratio, math.inf)
    return int(ratio) if float(ratio).is_integer() else ratio


def arch_settings_of(state_dict: Mapping[str, torch.Tensor]) -> Optional[dict]:
    """The settings (the dict `CoaT(arch=...)` takes) that a CoaT state dict's shapes and depths
    give, or None when it is not a CoaT's."""
    try:
        embed_dims = [state_dict[f'cls_token{i}'].shape[-1] for i in range(1, 5)]
        hidden = [state_dict[f'serial_blocks{i}.0.mlp.fc1.weight'].shape[0] for i in range(1, 5)]
    except KeyError:
        return None
    depths = [len({key.split('.')[1] for key in state_dict
                   if key.startswith(f'serial_blocks{i}.')}) for i in range(1, 5)]
    parallel = len({key.split('.')[1] for key in state_dict if key.startswith('parallel_blocks.')})
    return dict(embed_dims=embed_dims, serial_depths=depths, parallel_depth=parallel,
                num_heads=sum(CRPE_WINDOWS.values()),
                mlp_ratios=[_mlp_ratio(h, d) for h, d in zip(hidden, embed_dims)])


def _arch_named(settings: Optional[dict]) -> Optional[Union[str, dict]]:
    """The published variant with exactly these settings (from `arch_settings_of`) by its name,
    else the settings themselves."""
    for name, published in ARCH_SETTINGS.items():
        if settings == {key: list(value) if isinstance(value, tuple) else value
                        for key, value in published.items()}:
            return name
    return settings


def arch_of(state_dict: Mapping[str, torch.Tensor]) -> Optional[Union[str, dict]]:
    """A CoaT state dict's arch: its published variant's name, else the dict of its settings
    (None when it is not a CoaT's)."""
    return _arch_named(arch_settings_of(state_dict))
