"""The pieces of ImageNet training and evaluation: synthetic data, folder dataset,
repeated-augmentation sampler, top-k metric, training model, the optimizer's weight-decay rules
and loading classification checkpoints."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from cls_helpers import IMAGENET_CONFIGS
from coat_backbone import CheckpointError, CoaT, CoaTClassifier
from coat_backbone.classification import (CoaTImageClassifier, ImageFolderDataset,
                                          RepeatAugSampler, TopKAccuracy, load_classifier)
from coat_backbone.classification import data as data_module
from coat_backbone.datasets import (SYNTHETIC_CLASSES, SyntheticImageNetArgs,
                                    generate_synthetic_imagenet, synthetic_imagenet_files)
from tiny_archs import TINY_COAT

SMALL = SyntheticImageNetArgs(num_classes=4, train_per_class=5, val_per_class=2, img_size=40,
                              seed=1)
TRANSFORM = dict(input_size=32, interpolation='bicubic', crop_pct=0.875)


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob('*')) if p.is_file()}


def test_synthetic_dataset_is_deterministic_jpeg_class_folders(tmp_path):
    root = generate_synthetic_imagenet(tmp_path / 'a', SMALL)
    first = _files(root)
    assert sorted(p.name for p in (root / 'train').iterdir()) == list(SYNTHETIC_CLASSES[:4])
    images = [name for name in first if name.endswith('.JPEG')]
    assert len(images) == 4 * (5 + 2)
    assert all(first[name][:3] == b'\xff\xd8\xff' for name in images)  # JPEG signature
    assert first == _files(generate_synthetic_imagenet(tmp_path / 'b', SMALL))
    other = _files(generate_synthetic_imagenet(tmp_path / 'c', SyntheticImageNetArgs(
        **{**vars(SMALL), 'seed': 2})))
    assert other[images[0]] != first[images[0]]

    stamp = (root / images[0]).stat().st_mtime_ns
    generate_synthetic_imagenet(root, SMALL)  # already there: nothing rewritten
    assert (root / images[0]).stat().st_mtime_ns == stamp
    (tmp_path / 'foreign').mkdir()
    (tmp_path / 'foreign' / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not empty'):
        generate_synthetic_imagenet(tmp_path / 'foreign', SMALL)
    with pytest.raises(ValueError, match='num_classes'):
        SyntheticImageNetArgs(num_classes=9).check()


def test_folder_dataset_decodes_images_with_folder_labels(tmp_path):
    root = generate_synthetic_imagenet(tmp_path, SMALL)
    dataset = ImageFolderDataset(str(root / 'val'), TRANSFORM, num_classes=4)
    assert dataset.metainfo == dict(classes=SYNTHETIC_CLASSES[:4])
    assert len(dataset) == 8
    paths = synthetic_imagenet_files(root, SMALL)['val']
    for index, (path, label) in enumerate(dataset.samples):
        assert SYNTHETIC_CLASSES[label] == Path(path).parent.name
        assert Path(path) in paths
    image, label = dataset[5]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert -3 < float(image.mean()) < 3  # normalised with the ImageNet mean and std
    with pytest.raises(ValueError, match='4 class folders but the model has num_classes=1000'):
        ImageFolderDataset(str(root / 'val'), TRANSFORM, num_classes=1000)
    with pytest.raises(FileNotFoundError, match='<root>/<class name>/<image>.JPEG'):
        ImageFolderDataset(str(root / 'test'), TRANSFORM)


def test_repeat_aug_sampler_single_and_two_processes(monkeypatch):
    dataset = list(range(300))
    sampler = RepeatAugSampler(dataset, seed=0)
    first = list(sampler)
    assert len(first) == len(sampler) == 256  # rounded down to a multiple of 256, as DeiT
    assert first[0] == first[1] == first[2] != first[3]  # three copies in a row
    assert list(RepeatAugSampler(dataset, seed=0)) == first  # reproducible
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(RepeatAugSampler(dataset, seed=5)) != first

    per_rank = []
    for rank in (0, 1):
        monkeypatch.setattr(data_module, 'get_dist_info', lambda rank=rank: (rank, 2))
        per_rank.append(list(RepeatAugSampler(dataset, seed=0)))
    assert [len(draws) for draws in per_rank] == [128, 128]
    # The copies of an image go to different processes (each with its own augmentation).
    assert per_rank[0][0] == per_rank[1][0] == per_rank[0][1]


def test_topk_accuracy():
    metric = TopKAccuracy(topk=(1, 2, 5))
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = torch.tensor([1, 1, 0, 2])
    metric.process(None, [dict(pred_score=s, gt_label=t) for s, t in zip(scores, labels)])
    # top-1: rows 0; top-2: rows 0, 1; top-5 with 3 classes: every row.
    assert metric.compute_metrics(metric.results) == dict(top1=25.0, top2=50.0, top5=100.0)
    with pytest.raises(ValueError, match='needs the class labels'):
        metric.process(None, [dict(pred_score=scores[0], gt_label=None)])
    with pytest.raises(ValueError, match='positive k'):
        TopKAccuracy(topk=(0,))


def test_training_model_modes():
    backbone = dict(type='CoaTClassifier', arch=TINY_COAT, num_classes=5)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 4])
    mixed = CoaTImageClassifier(backbone, mixup=dict(mixup_alpha=0.8, cutmix_alpha=1.0),
                                label_smoothing=0.1)
    loss = mixed(images, labels, mode='loss')['loss']
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert mixed.backbone.head.weight.grad is not None
    plain = CoaTImageClassifier(backbone, label_smoothing=0.0)
    plain.eval()
    logits = plain(images)
    assert logits.shape == (4, 5)
    expected = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(plain(images, labels, mode='loss')['loss'], expected)
    predictions = plain(images, labels, mode='predict')
    assert len(predictions) == 4 and torch.equal(predictions[3]['pred_score'], logits[3])
    assert int(predictions[3]['gt_label']) == 4
    with pytest.raises(ValueError, match='Unknown mode'):
        plain(images, mode='features')


def test_recipe_optimizer_skips_decay_on_norms_biases_and_class_tokens():
    cfg = Config.fromfile(IMAGENET_CONFIGS / 'coat_tiny_in1k.py')
    model = CoaTImageClassifier(dict(type='CoaTClassifier', arch=TINY_COAT, num_classes=5))
    optim_cfg = cfg.optim_wrapper.copy()
    optim_cfg.update(type='OptimWrapper')  # AMP needs a GPU; the parameter groups are the same
    optim_cfg.pop('loss_scale')
    groups = build_optim_wrapper(model, optim_cfg).optimizer.param_groups
    decay = {id(p): group['weight_decay'] for group in groups for p in group['params']}
    grouped = [id(p) for group in groups for p in group['params']]
    assert sorted(grouped) == sorted({id(p) for p in model.parameters()})  # shared ones once
    for name, param in model.named_parameters():
        no_decay = param.ndim <= 1 or 'cls_token' in name
        assert decay[id(param)] == (0.0 if no_decay else 0.05), name


def test_load_classifier_recognises_published_variants(tmp_path):
    reference = CoaTClassifier(arch='lite_tiny', num_classes=10)
    torch.save({'model': reference.state_dict(), 'epoch': 299}, tmp_path / 'official.pth')
    model = load_classifier(str(tmp_path / 'official.pth'))
    assert model.embed_dims == [64, 128, 256, 320] and model.num_classes == 10
    assert all(torch.equal(value, reference.state_dict()[key])
               for key, value in model.state_dict().items())
    backbone_only = {f'backbone.{key}': value
                     for key, value in CoaT('lite_tiny').state_dict().items()}
    torch.save({'state_dict': backbone_only}, tmp_path / 'detector.pth')
    with pytest.raises(CheckpointError, match='no classification head'):
        load_classifier(str(tmp_path / 'detector.pth'))
