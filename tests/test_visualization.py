"""Tests of the detection prediction gallery."""
import mmcv
import numpy as np
import pytest
import torch
from mmcv.transforms import LoadImageFromFile
from mmdet.datasets import CocoDataset
from mmdet.datasets.transforms import LoadAnnotations, PackDetInputs
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmdet.visualization import DetLocalVisualizer
from mmengine.model import BaseModel
from mmengine.structures import InstanceData

from coat_backbone.toolkit.visualization import _enlarge_sample, draw_prediction_gallery


def test_enlarge_sample_scales_boxes_and_masks():
    mask = np.zeros((1, 4, 4), dtype=np.uint8)
    mask[0, 1:3, 2] = 1
    sample = DetDataSample(
        gt_instances=InstanceData(bboxes=HorizontalBoxes(torch.tensor([[2., 1., 3., 3.]])),
                                  masks=BitmapMasks(mask, 4, 4), labels=torch.tensor([0])),
        pred_instances=InstanceData(bboxes=torch.tensor([[2., 1., 3., 3.]]),
                                    masks=torch.from_numpy(mask).bool(), labels=torch.tensor([0]),
                                    scores=torch.tensor([0.9])))
    big = _enlarge_sample(sample, 3)
    for instances in (big.gt_instances, big.pred_instances):
        assert instances.bboxes.tolist() == [[6., 3., 9., 9.]]
        assert instances.masks.shape == (1, 12, 12)
        assert instances.masks.sum() == 3 * 3 * mask.sum()
        assert bool(instances.masks[0, 3:9, 6:9].all())
    assert isinstance(sample.gt_instances.masks, BitmapMasks)  # the original is untouched


class _EchoDetector(BaseModel):
    """Predicts exactly the ground truth, so the gallery draws boxes on both sides."""

    def forward(self, inputs, data_samples=None, mode='tensor'):
        raise NotImplementedError

    def test_step(self, data):
        samples = data['data_samples']
        for sample in samples:
            gt = sample.gt_instances
            sample.pred_instances = InstanceData(
                bboxes=gt.bboxes.tensor, labels=gt.labels, scores=torch.ones(len(gt)),
                masks=torch.from_numpy(gt.masks.to_ndarray()).bool())
        return samples


def test_gallery_draws_truth_and_predictions(coco_shapes, tmp_path):
    dataset = CocoDataset(
        data_root=str(coco_shapes), ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'), test_mode=True,
        metainfo=dict(classes=('circle', 'square', 'triangle')),
        # Transform objects rather than registry names: the lookup of scoped names depends on
        # which default scope earlier tests in the process left behind.
        pipeline=[LoadImageFromFile(), LoadAnnotations(with_bbox=True, with_mask=True),
                  PackDetInputs()])
    visualizer = DetLocalVisualizer(name='gallery_test')
    out = draw_prediction_gallery(_EchoDetector(), dataset, visualizer, tmp_path / 'g.png',
                                  indices=range(3), upscale=2, columns=2)
    picture = mmcv.imread(str(out), channel_order='rgb').astype(int)
    side = 2 * 64  # two rows of (title strip + 2x enlarged 64-pixel image)
    assert picture.shape == (2 * (side + 28), 2 * (2 * side) + 12, 3)
    truth, prediction = picture[28:28 + side, :side], picture[28:28 + side, side:2 * side]
    raw = mmcv.imread(dataset[0]['data_samples'].img_path, channel_order='rgb')
    raw = raw.repeat(2, axis=0).repeat(2, axis=1).astype(int)
    # Something is drawn, in the right colours, and the same on both sides (the echo predicts
    # the ground truth; only the score in the labels differs).
    assert np.abs(truth - raw).mean() > 3.0 and np.median(np.abs(truth - raw)) <= 2
    assert np.abs(truth - prediction).mean() < 0.5 * np.abs(truth - raw).mean()
    assert np.abs(picture[-side:, -side:] - 255).max() == 0  # padding tile of the 2x2 grid
    with pytest.raises(ValueError, match='indices is empty'):
        draw_prediction_gallery(_EchoDetector(), dataset, visualizer, tmp_path / 'e.png', [])
