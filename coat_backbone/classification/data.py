"""ImageNet-layout datasets and the repeated-augmentation sampler, for mmengine's Runner.

The images go through timm's own ImageNet pipeline (`timm.data.create_transform`), which is what the
official CoaT training ran, so a config names the recipe's augmentations by timm's arguments.
"""
import os.path as osp
from typing import Optional

from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.registry import DATA_SAMPLERS, DATASETS
from timm.data import create_transform
from timm.data.distributed_sampler import RepeatAugSampler as _TimmRepeatAugSampler
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder

LAYOUT = '<root>/<class name>/<image>.JPEG'


@DATASETS.register_module()
class ImageFolderDataset(ImageFolder):
    """Images in class folders (the ImageNet layout: `train/n01440764/*.JPEG`), decoded with PIL.

    Class indices follow the sorted folder names, which for the ILSVRC-2012 synset folders are
    the standard ImageNet-1k indices the official checkpoints use. Samples are
    `(image tensor, class index)`, batched by mmengine's `default_collate`.

    Args:
        root: the folder holding one sub-folder per class.
        transform: keyword arguments of `timm.data.create_transform` (e.g. `input_size`,
            `is_training`, `auto_augment`, `crop_pct`, `interpolation`).
        num_classes: when given, the number of class folders must equal it (the classifier's
            head size), so a wrong folder fails here and not as a wrong label later.
    """

    def __init__(self, root: str, transform: dict, num_classes: Optional[int] = None) -> None:
        if not osp.isdir(root):
            raise FileNotFoundError(f'Image folder {root} not found: expected the layout {LAYOUT} '
                                    f'(ImageNet: data/imagenet/train and data/imagenet/val); set '
                                    f'the dataset root in the config.')
        super().__init__(root, transform=create_transform(**transform))
        if num_classes is not None and len(self.classes) != num_classes:
            raise ValueError(f'{root} has {len(self.classes)} class folders but the model has '
                             f'num_classes={num_classes}; point the dataset at the right folder '
                             f'or set the head size to {len(self.classes)}.')

    @property
    def metainfo(self) -> dict:
        """Class names, for mmengine's evaluator and visualizer."""
        return dict(classes=tuple(self.classes))


@DATA_SAMPLERS.register_module()
class RepeatAugSampler(_TimmRepeatAugSampler):
    """timm's repeated-augmentation sampler (DeiT's RASampler) as an mmengine data sampler.

    Each image appears `num_repeats` times per epoch, spread over the processes, each copy with its
    own augmentation; an epoch still draws about `len(dataset)` samples in all. The process group
    comes from mmengine (one process works too, as in the official recipe), and the shuffling order
    is seeded by `seed + epoch` so that every process, and a resumed run, draws the same order.

    Args:
        dataset: the dataset to sample.
        shuffle: shuffle the images each epoch.
        num_repeats: copies of each image per epoch.
        selected_round: the samples per epoch are rounded down to a multiple of it, as DeiT does
            (datasets smaller than it are not rounded).
        seed: base of the shuffling seed; the Runner passes its seed, or None to agree on a
            random one across processes.
    """

    def __init__(self, dataset: Dataset, shuffle: bool = True, num_repeats: int = 3,
                 selected_round: int = 256, seed: Optional[int] = None) -> None:
        rank, world_size = get_dist_info()
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle,
                         num_repeats=num_repeats, selected_round=selected_round)
        self.seed = sync_random_seed() if seed is None else seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """timm seeds the shuffle with `self.epoch` alone; fold the seed into it."""
        super().set_epoch(self.seed + epoch)
