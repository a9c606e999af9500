"""The synthetic segmentation shapes (deterministic, consistent with their scenes and patterns),
their dataset class under the mmseg scope, and the image | ground truth | prediction panels."""
import json

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from coat_backbone.datasets import shapes
from coat_backbone.datasets.seg_dataset import SEG_PALETTE
from coat_backbone.datasets.shapes import (SEG_CLASSES, SEG_PATTERNS, SegShapesArgs,
                                           generate_seg_shapes, seg_shapes_paths)
from coat_backbone.toolkit.visualization import colourise, save_segmentation_panels
from seg_helpers import TINY_DATA, make_seg_shapes


@pytest.fixture(scope='module')
def seg_shapes(tmp_path_factory):
    return make_seg_shapes(tmp_path_factory.mktemp('seg_shapes'))


def read_split(root, split):
    img_dir, ann_dir = seg_shapes_paths(root, split)
    return [(cv2.imread(str(path))[..., ::-1], cv2.imread(str(ann_dir / path.name),
                                                          cv2.IMREAD_UNCHANGED))
            for path in sorted(img_dir.iterdir())]


def test_layout_and_label_maps(seg_shapes):
    darkened = {label: [] for label in range(len(SEG_PATTERNS))}
    for split, num in (('train', TINY_DATA.num_train), ('val', TINY_DATA.num_val)):
        items = read_split(seg_shapes, split)
        assert len(items) == num
        for index, (image, label_map) in enumerate(items):
            assert image.shape == (64, 64, 3) and label_map.shape == (64, 64)
            assert label_map.dtype == np.uint8 and set(np.unique(label_map)) <= {0, 1, 2, 3}
            # The labels are the visible shapes of the very scene the image shows; the picture is
            # that scene but for the pattern darkening part of the striped and checked shapes.
            rng = np.random.default_rng([TINY_DATA.seed, shapes.SPLIT_CODES[split], index])
            scene, instances = shapes.render_shapes_scene(rng, TINY_DATA)
            expected = np.zeros_like(label_map)
            for label, mask in instances:
                expected[mask] = label + 1
            np.testing.assert_array_equal(label_map, expected)
            changed = (image != scene).any(axis=-1)
            assert not changed[label_map == 0].any()
            for label, mask in instances:
                darkened[label] += changed[mask].tolist()
    shares = {SEG_PATTERNS[label]: np.mean(flags) for label, flags in darkened.items() if flags}
    assert shares.get('plain', 0.0) == 0.0
    assert {'stripes', 'checks'} <= set(shares)
    assert all(0.25 < shares[pattern] < 0.75 for pattern in ('stripes', 'checks')), shares
    manifest = json.loads((seg_shapes / 'manifest.json').read_text())
    assert manifest['generator'] == 'seg_shapes' and manifest['args']['num_train'] == 4


def test_generation_is_deterministic_and_skipped_when_present(seg_shapes, tmp_path):
    again = generate_seg_shapes(tmp_path / 'again', TINY_DATA)
    for split in ('train', 'val'):
        for folder, other in zip(seg_shapes_paths(seg_shapes, split),
                                 seg_shapes_paths(again, split)):
            assert [p.read_bytes() for p in sorted(folder.iterdir())] == [
                p.read_bytes() for p in sorted(other.iterdir())]
    stamp = (again / 'manifest.json').stat().st_mtime_ns
    generate_seg_shapes(again, TINY_DATA)
    assert (again / 'manifest.json').stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match='split must be one of'):
        seg_shapes_paths(again, 'test')


def test_refuses_a_foreign_directory(tmp_path):
    (tmp_path / 'mine.txt').write_text('not a dataset')
    with pytest.raises(FileExistsError, match='holds no manifest.json'):
        generate_seg_shapes(tmp_path, SegShapesArgs(num_train=1, num_val=1, img_size=32,
                                                    min_radius=2.0, max_radius=8.0))


def dataset(root, split='val', **kwargs):
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    img_dir, ann_dir = seg_shapes_paths(root, split)
    return DATASETS.build(dict(
        type='SyntheticShapesSegDataset', data_prefix=dict(img_path=str(img_dir),
                                                           seg_map_path=str(ann_dir)),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                  dict(type='PackSegInputs')], **kwargs))


def test_dataset_class_reads_the_split(seg_shapes):
    val_set = dataset(seg_shapes)
    assert val_set.metainfo['classes'] == SEG_CLASSES and len(val_set) == TINY_DATA.num_val
    item = val_set[0]
    label_map = read_split(seg_shapes, 'val')[0][1]
    # Label 0 is the background class, not ignored (no reduce_zero_label).
    np.testing.assert_array_equal(item['data_samples'].gt_sem_seg.data[0].numpy(), label_map)


def test_dataset_class_names_a_missing_dataset(tmp_path):
    (tmp_path / 'img_dir' / 'val').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='generate_seg_shapes'):
        dataset(tmp_path)


def test_colourise_uses_the_palette_and_white_for_ignored():
    picture = colourise(np.array([[0, 3], [255, 1]]), SEG_PALETTE)
    assert picture.tolist() == [[list(SEG_PALETTE[0]), list(SEG_PALETTE[3])],
                                [[255, 255, 255], list(SEG_PALETTE[1])]]


class OracleModel(torch.nn.Module):
    """Predicts the ground truth, except class 1 everywhere in the top row."""

    def test_step(self, data):
        outputs = []
        for sample in data['data_samples']:
            predicted = SegDataSample(metainfo=sample.metainfo)
            labels = sample.gt_sem_seg.data.clone()
            labels[:, 0] = 1
            predicted.gt_sem_seg = sample.gt_sem_seg
            predicted.pred_sem_seg = PixelData(data=labels)
            outputs.append(predicted)
        return outputs


def test_panels_show_image_ground_truth_and_prediction(seg_shapes, tmp_path):
    val_set = dataset(seg_shapes)
    out = save_segmentation_panels(OracleModel(), val_set, tmp_path / 'panels.png', [0, 1],
                                   upscale=2)
    picture = cv2.imread(str(out))[..., ::-1]
    # Title strip, 2 rows of 128-pixel panels with gaps, legend strip; 3 panels with 2 gaps wide.
    assert picture.shape == (26 + 2 * (128 + 8) + 26, 3 * 128 + 2 * 8, 3)
    image, label_map = read_split(seg_shapes, 'val')[0]
    row = picture[26:26 + 128]
    np.testing.assert_array_equal(row[::2, 0:128:2], image)
    np.testing.assert_array_equal(row[::2, 136:264:2], colourise(label_map, SEG_PALETTE))
    prediction = row[::2, 272:400:2]
    assert (prediction[0] == SEG_PALETTE[1]).all()
    np.testing.assert_array_equal(prediction[1:], colourise(label_map, SEG_PALETTE)[1:])
    with pytest.raises(ValueError, match='indices is empty'):
        save_segmentation_panels(OracleModel(), val_set, tmp_path / 'none.png', [])
