"""Evaluating a classification checkpoint on an image folder, the way the official repository does.

Any checkpoint format `coat_backbone.checkpoint` reads works: official `{'model': ...}` files, timm
weights, and the checkpoints `tools/train_cls.py` writes (`{'state_dict': {'backbone.*'}}`).
"""
from contextlib import nullcontext
from typing import Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import print_log
from torch.utils.data import DataLoader

from ..toolkit.builder import model_from_state_dict
from ..checkpoint import CheckpointError, StateDict, extract_state_dict, read_checkpoint
from ..models.coat import CoaTClassifier
from .data import ImageFolderDataset
from .metric import TopKAccuracy

# The official evaluation (src/datasets.py of mlpc-ucsd/CoaT): bicubic resize of the short side to
# input_size * 256/224, centre crop. It produced the published accuracies, 384 model included.
OFFICIAL_CROP_PCT = 0.875


def eval_transform(img_size: int = 224, crop_pct: float = OFFICIAL_CROP_PCT,
                   crop_mode: str = 'center') -> dict:
    """`timm.data.create_transform` arguments of the evaluation transform. timm's own CoaT
    settings differ: crop_pct 0.9 at 224, and crop_pct 1.0 with crop_mode 'squash' at 384."""
    return dict(input_size=img_size, interpolation='bicubic', crop_pct=crop_pct,
                crop_mode=crop_mode)


def settings_from_config(cfg: Config, name: str) -> Tuple[Union[str, dict], dict]:
    """The backbone arch and the test transform of a classification training config (`name`
    says which, in errors)."""
    model_type = cfg.get('model', {}).get('type')
    if model_type != 'CoaTImageClassifier':
        raise ValueError(f'{name} is not a classification config (its model is {model_type}); '
                         f'give one of configs/imagenet/ or --arch.')
    return cfg.model.backbone.arch, dict(cfg.test_dataloader.dataset.transform)


def raw_weights(checkpoint: Mapping, path: str) -> StateDict:
    """The non-averaged weights of a checkpoint written with mmengine's `EMAHook`.

    With EMA, such a checkpoint's `state_dict` holds the averaged (EMA) weights, the ones
    detection and segmentation load, and `ema_state_dict` the raw ones under `module.` keys.
    """
    ema = checkpoint.get('ema_state_dict')
    if not isinstance(ema, Mapping):
        raise CheckpointError(
            f"{path} has no 'ema_state_dict', where mmengine's EMAHook keeps the raw weights: the "
            f"weights it holds are the raw ones (in an official file, 'model'; 'model_ema' is the "
            f"average). Evaluate it without --raw-weights.")
    return {key[len('module.'):]: value for key, value in ema.items()
            if key.startswith('module.')}


def load_classifier(path: str, arch: Optional[Union[str, dict]] = None,
                    use_raw_weights: bool = False) -> CoaTClassifier:
    """A `CoaTClassifier` with the checkpoint's weights, loaded strictly.

    `arch` defaults to the one the checkpoint's shapes give; the head size is read from the
    checkpoint. `use_raw_weights` takes the raw weights of an EMA run (see
    `raw_weights`) instead of the averaged ones.
    """
    checkpoint = read_checkpoint(path)
    if use_raw_weights:
        checkpoint = dict(state_dict=raw_weights(checkpoint, path))
    state_dict, unwrapped = extract_state_dict(checkpoint, source=path)
    weights = 'raw weights of the EMA run' if use_raw_weights else unwrapped
    return model_from_state_dict(state_dict, f'{path} ({weights})', arch, classifier=True)


@torch.no_grad()
def evaluate_folder(model: CoaTClassifier,
                    folder: str,
                    transform: dict,
                    batch_size: int = 128,
                    num_workers: int = 4,
                    device: str = 'cpu',
                    amp: bool = False,
                    log_interval: int = 50) -> Dict[str, float]:
    """Top-1 / top-5 accuracy (percent) and mean cross-entropy of `model` on a class-folder
    dataset. `amp` runs the forward in CUDA float16 autocast, as the official evaluation does.

    Returns `dict(acc1, acc5, loss, num_images)`.
    """
    dataset = ImageFolderDataset(folder, transform, num_classes=model.num_classes)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.startswith('cuda'))
    metric = TopKAccuracy(topk=(1, 5))
    model.eval().to(device)
    loss_sum = 0.0
    num_batches = len(loader)
    for step, (images, targets) in enumerate(loader, 1):
        images = images.to(device, non_blocking=True)
        # Entered only with amp: torch 2.1 refuses a float16 CPU autocast even when disabled.
        with torch.autocast(device_type='cuda', dtype=torch.float16) if amp else nullcontext():
            logits = model(images)
        logits = logits.float().cpu()
        loss_sum += F.cross_entropy(logits, targets, reduction='sum').item()
        metric.process(None, [dict(pred_score=score, gt_label=label)
                              for score, label in zip(logits, targets)])
        if step % log_interval == 0 or step == num_batches:
            print_log(f'evaluated batch {step}/{num_batches}', logger='current')
    accuracy = metric.compute_metrics(metric.results)
    return dict(acc1=accuracy['top1'], acc5=accuracy['top5'], loss=loss_sum / len(dataset),
                num_images=len(dataset))
