"""Training, evaluation, testing and inference of the real configs, shrunk to CPU size (a tiny
CoaT on 64-pixel synthetic shapes; see det_helpers), through the tools' code paths."""
import importlib.util
import json
import pickle
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from coat_backbone.checkpoint import read_checkpoint
from coat_backbone.datasets.shapes import SHAPE_CLASSES, coco_shapes_paths
from coat_backbone.engine import adapt_to_machine, build_runner, cli
from det_helpers import CONFIG_DIR, TOOLS, make_tiny, tiny_config_file
from tool_runner import refusal


def val_metrics(work_dir: Path) -> dict:
    """The validation metrics mmengine logged in work_dir (the last record that has them)."""
    (scalars,) = work_dir.glob('*/vis_data/scalars.json')
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    return [r for r in records if any(key.startswith('coco/') for key in r)][-1]


@pytest.fixture(scope='module')
def trained_mask_rcnn(coco_shapes, tmp_path_factory):
    """The published CoaT Small 3x recipe, shrunk, trained one epoch with tools/train.py's code."""
    root = tmp_path_factory.mktemp('mask_rcnn')
    config = tiny_config_file(CONFIG_DIR / 'mask_rcnn_coat_small_fpn_3x.py', coco_shapes,
                              root / 'work', root / 'tiny_mask_rcnn.py')
    cli.train_main([str(config)])
    return config, root / 'work'


def test_mask_rcnn_trains_and_evaluates(trained_mask_rcnn):
    _, work_dir = trained_mask_rcnn
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'epoch_1.pth')
    metrics = val_metrics(work_dir)
    assert {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(metrics)


def test_test_tool_dumps_results_and_pictures(trained_mask_rcnn, coco_shapes, tmp_path, capsys):
    config, work_dir = trained_mask_rcnn
    out = tmp_path / 'results.pkl'
    cli.test_main([str(config), str(work_dir / 'epoch_1.pth'), '--work-dir', str(tmp_path),
                   '--out', str(out), '--show-dir', 'pictures',
                   '--cfg-options', 'visualizer.name=test_tool'])
    with open(out, 'rb') as file:
        results = pickle.load(file)
    num_val = len(list(coco_shapes_paths(coco_shapes, 'val')[1].iterdir()))
    assert len(results) == num_val and 'masks' in results[0]['pred_instances']
    assert len(list(tmp_path.glob('*/pictures/*.png'))) == num_val
    checkpoint = str(work_dir / 'epoch_1.pth')
    assert re.search('results.pkl exists already.*--force',
                     refusal(cli.test_main, [str(config), checkpoint, '--out', str(out)], capsys))
    # Paths that cannot work are named before testing, with a fix that works (not --force).
    assert f'{out} is a file, not a folder' in refusal(
        cli.test_main, [str(config), checkpoint, '--out', str(out / 'r.pkl')], capsys)
    (tmp_path / 'results.json').write_text('{}')
    assert 'results.json: detection results are dumped as a pickle; use a .pkl' in refusal(
        cli.test_main, [str(config), checkpoint, '--out', str(tmp_path / 'results.json')], capsys)
    # A file that is no checkpoint, before anything is built.
    assert f'{config} is not a PyTorch checkpoint' in refusal(
        cli.test_main, [str(config), str(config)], capsys)
    # A backbone-only file would load non-strictly and evaluate a random head: refused.
    state = read_checkpoint(checkpoint)['state_dict']
    backbone_only = tmp_path / 'backbone.pth'
    torch.save({'state_dict': {k: v for k, v in state.items() if k.startswith('backbone.')}},
               backbone_only)
    assert re.search(r'backbone.pth lacks \d+ of the \d+ weights.*neck.*tools/eval_cls.py '
                     r'evaluates official, timm and converted classifier',
                     refusal(cli.test_main, [str(config), str(backbone_only), '--work-dir',
                                             str(tmp_path / 'bad')], capsys))
    # Nor is a detector trained for another number of classes: all names, other shapes.
    other_classes = tmp_path / 'other_classes.pth'
    torch.save({'state_dict': {k: v.repeat(2, *([1] * (v.dim() - 1)))
                               if k.startswith('roi_head.bbox_head.fc_cls') else v
                               for k, v in state.items()}}, other_classes)
    assert re.search(r'other_classes.pth holds 2 weights in other shapes.*fc_cls.weight: '
                     r'checkpoint \(8, .*another number of classes',
                     refusal(cli.test_main, [str(config), str(other_classes), '--work-dir',
                                             str(tmp_path / 'bad2')], capsys))


def test_demo_tool_draws_predictions(trained_mask_rcnn, coco_shapes, tmp_path, capsys):
    config, work_dir = trained_mask_rcnn
    spec = importlib.util.spec_from_file_location('coat_demo_tool', TOOLS / 'demo.py')
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    images = coco_shapes_paths(coco_shapes, 'val')[1]
    checkpoint = str(work_dir / 'epoch_1.pth')
    demo.main([str(config), checkpoint, str(images), '--out-dir', str(tmp_path), '--device',
               'cpu', '--score-thr', '0.0'])
    assert sorted(p.name for p in (tmp_path / 'vis').iterdir()) == sorted(
        p.name for p in images.iterdir())
    assert 'No such image or folder' in refusal(
        demo.main, [str(config), checkpoint, str(tmp_path / 'missing.png')], capsys)
    assert f'{config} is not a PyTorch checkpoint' in refusal(
        demo.main, [str(config), str(config), str(images)], capsys)
    # Nothing is overwritten: neither earlier pictures nor one image's by another's.
    pictures = {p.name: p.read_bytes() for p in (tmp_path / 'vis').iterdir()}
    assert re.search('outputs exist already.*--force', refusal(
        demo.main, [str(config), checkpoint, str(images), '--out-dir', str(tmp_path)], capsys))
    twin = tmp_path / 'twin'
    twin.mkdir()
    (twin / '000000.png').write_bytes((images / '000000.png').read_bytes())
    assert 'same name' in refusal(demo.main, [str(config), checkpoint, str(images), str(twin),
                                              '--out-dir', str(tmp_path / 'other')], capsys)
    # A backbone-only file would draw a random head's boxes: refused, as by tools/test.py.
    state = read_checkpoint(checkpoint)['state_dict']
    backbone_only = tmp_path / 'backbone.pth'
    torch.save({'state_dict': {k: v for k, v in state.items() if k.startswith('backbone.')}},
               backbone_only)
    assert re.search(r'backbone.pth lacks \d+ of the \d+ weights.*neck', refusal(
        demo.main, [str(config), str(backbone_only), str(images), '--out-dir',
                    str(tmp_path / 'backbone_only'), '--device', 'cpu'], capsys))
    assert not (tmp_path / 'backbone_only').exists()
    # Not even --force writes a picture over an input image, or under a file.
    assert '000000.png is an input image' in refusal(
        demo.main, [str(config), checkpoint, str(tmp_path / 'vis'), '--out-dir', str(tmp_path),
                    '--force'], capsys)
    assert f'--out-dir {backbone_only}/out: {backbone_only} is a file, not a folder' in refusal(
        demo.main, [str(config), checkpoint, str(images), '--out-dir',
                    str(backbone_only / 'out')], capsys)
    # Predictions are named without the extension: x.png and x.jpg would share x.json.
    (twin / '000000.png').rename(twin / '000001.jpg')
    pair = [str(images / '000001.png'), str(twin / '000001.jpg')]
    assert 'so their predictions would overwrite' in refusal(
        demo.main, [str(config), checkpoint, *pair, '--save-pred', '--out-dir',
                    str(tmp_path / 'other')], capsys)
    assert {p.name: p.read_bytes() for p in (tmp_path / 'vis').iterdir()} == pictures


def test_deformable_detr_trains_and_evaluates(coco_shapes, tmp_path):
    cfg = make_tiny(Config.fromfile(CONFIG_DIR / 'deformable_detr_coat_small_50e.py'),
                    coco_shapes, tmp_path)
    adapt_to_machine(cfg)
    build_runner(cfg).train()
    assert (tmp_path / 'epoch_1.pth').is_file()
    assert 'coco/bbox_mAP' in val_metrics(tmp_path)


USER_CONFIG = '''
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='CoaT',
        arch=dict(embed_dims=[16, 32, 32, 48], serial_depths=[1, 1, 1, 1], parallel_depth=0,
                  num_heads=8, mlp_ratios=[2, 2, 2, 2])),
    neck=dict(in_channels=[16, 32, 32, 48]),
    roi_head=dict(bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)))
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root='',
        ann_file={ann_file!r},
        data_prefix=dict(img={img_dir!r}),
        metainfo=dict(classes={classes!r}),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='Resize', scale=(96, 64), keep_ratio=True),
            dict(type='PackDetInputs'),
        ]))
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
train_cfg = dict(max_epochs=1)
optim_wrapper = dict(optimizer=dict(lr=0.002))
'''


def test_user_config_outside_the_repository(coco_shapes, tmp_path, monkeypatch):
    """A user's own config, elsewhere, on mmdet's bases, trained from that directory."""
    ann_file, img_dir = coco_shapes_paths(coco_shapes, 'train')
    (tmp_path / 'my_coat.py').write_text(USER_CONFIG.format(
        ann_file=str(ann_file), img_dir=f'{img_dir}/', classes=SHAPE_CLASSES))
    monkeypatch.chdir(tmp_path)
    cli.train_main(['my_coat.py'])
    assert (tmp_path / 'work_dirs' / 'my_coat' / 'epoch_1.pth').is_file()
