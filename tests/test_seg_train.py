"""Training, resuming, testing and inference of the ADE20K segmentation configs, shrunk to CPU size
(a tiny CoaT on 64-pixel synthetic shapes; see seg_helpers), through the tools' code paths; and a
user's own mmseg config outside the repository."""
import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction

from coat_backbone.datasets.shapes import SEG_CLASSES, seg_shapes_paths
from coat_backbone.engine import adapt_to_machine, build_runner, cli
from seg_helpers import CONFIG_DIR, REPO, make_seg_shapes, make_tiny, scalars, tiny_config_file
from tiny_archs import TINY_LITE
from tool_runner import refusal

UPERNET_SMALL = CONFIG_DIR / 'upernet_coat_small_512x512_160k_ade20k.py'
FPN_LITE_SMALL = CONFIG_DIR / 'fpn_coat_lite_small_512x512_40k_ade20k.py'
# The sliding-window options the README documents, as typed after --cfg-options.
SLIDE_OPTIONS = ['model.test_cfg.mode=slide', 'model.test_cfg.crop_size=(512,512)',
                 'model.test_cfg.stride=(341,341)']


@pytest.fixture(scope='module')
def seg_shapes(tmp_path_factory) -> Path:
    return make_seg_shapes(tmp_path_factory.mktemp('seg_shapes'))


@pytest.fixture(scope='module')
def trained_upernet(seg_shapes, tmp_path_factory):
    """The CoaT Small UperNet recipe, shrunk, trained 2 iterations with tools/train.py's code."""
    root = tmp_path_factory.mktemp('upernet')
    config = tiny_config_file(UPERNET_SMALL, seg_shapes, root / 'work', root / 'tiny_upernet.py')
    cli.train_main([str(config)])
    return config, root / 'work'


def test_upernet_trains_and_evaluates(trained_upernet):
    _, work_dir = trained_upernet
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_2.pth')
    records = scalars(work_dir)
    assert [r['step'] for r in records if 'loss' in r] == [1, 2]
    assert all(np.isfinite(r['loss']) for r in records if 'loss' in r)
    (metrics, ) = [r for r in records if 'mIoU' in r]
    assert 0.0 <= metrics['mIoU'] <= 100.0


def test_a_new_run_never_overwrites_an_earlier_one(trained_upernet, capsys):
    config, work_dir = trained_upernet
    before = {path.name: path.read_bytes() for path in work_dir.iterdir() if path.is_file()}
    assert re.search(r'holds an earlier run \(last_checkpoint, .*iter_2\.pth.*--resume.*'
                     r'--work-dir.*--force', refusal(cli.train_main, [str(config)], capsys))
    assert {path.name: path.read_bytes() for path in work_dir.iterdir() if path.is_file()} == before


def test_upernet_resumes_where_it_stopped(trained_upernet):
    config, work_dir = trained_upernet
    cli.train_main([str(config), '--resume', '--cfg-options', 'train_cfg.max_iters=3'])
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_3.pth')
    # The second run trained only iteration 3: it continued from iteration 2.
    assert [r['step'] for r in scalars(work_dir) if 'loss' in r] == [1, 2, 3]


def test_test_tool_saves_prediction_maps(trained_upernet, seg_shapes, tmp_path, capsys):
    config, work_dir = trained_upernet
    out = tmp_path / 'preds'
    cli.test_main([str(config), str(work_dir / 'iter_2.pth'), '--work-dir', str(tmp_path),
                   '--out', str(out)])
    images = seg_shapes_paths(seg_shapes, 'val')[0]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in images.iterdir())
    # mmseg's --out is a folder: a file is named as such, not offered --force.
    checkpoint = str(work_dir / 'iter_2.pth')
    assert f'--out {config}: {config} is a file, not a folder' in refusal(
        cli.test_main, [str(config), checkpoint, '--out', str(config)], capsys)
    assert re.search(f'--out {out} is not empty.*--force.*other files stay',
                     refusal(cli.test_main, [str(config), checkpoint, '--out', str(out)], capsys))
    assert f'--show-dir {config}/vis: {config} is a file' in refusal(
        cli.test_main, [str(config), checkpoint, '--show-dir', str(config / 'vis')], capsys)
    # --show-dir draws every test image (mmseg's hook alone draws every 50th batch).
    pictures = tmp_path / 'pictures'
    cli.test_main([str(config), checkpoint, '--work-dir', str(tmp_path / 'w2'),
                   '--show-dir', str(pictures), '--cfg-options', 'visualizer.name=seg_show_dir'])
    assert len(list(pictures.rglob('*.png'))) == len(list(images.iterdir()))
    # mmseg names pictures after the image, so a second run would replace them: refused.
    assert re.search(f'--show-dir {pictures} is not empty.*replace pictures.*--force',
                     refusal(cli.test_main, [str(config), checkpoint, '--work-dir',
                                             str(tmp_path / 'w3'), '--show-dir', str(pictures)],
                             capsys))


def test_semantic_fpn_trains_and_evaluates(seg_shapes, tmp_path):
    cfg = make_tiny(Config.fromfile(FPN_LITE_SMALL), seg_shapes, tmp_path)
    adapt_to_machine(cfg)
    build_runner(cfg).train()
    assert (tmp_path / 'iter_2.pth').is_file()
    assert any('mIoU' in r for r in scalars(tmp_path))


@pytest.mark.parametrize('options', [[], SLIDE_OPTIONS], ids=['whole', 'slide'])
def test_inference_keeps_an_odd_image_size(seg_shapes, tmp_path, options):
    """250x333 through the real ADE20K test pipeline (resized to 512x682 for the model, i.e. two
    overlapping 512x512 windows in slide mode) comes back as a 250x333 prediction."""
    from mmseg.apis import inference_model, init_model
    cfg = make_tiny(Config.fromfile(UPERNET_SMALL), seg_shapes, tmp_path)
    cfg.test_pipeline = Config.fromfile(UPERNET_SMALL).test_pipeline  # full size: 512 short side
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    cfg_options = parser.parse_args(['--cfg-options', *options] if options else []).cfg_options
    model = init_model(cfg, device='cpu', cfg_options=cfg_options)
    # Record the size of every input the network sees: the image, or each window of it.
    seen = []
    network = model.encode_decode
    model.encode_decode = lambda inputs, metas: seen.append(inputs.shape[-2:]) or network(
        inputs, metas)
    image = np.random.default_rng(0).integers(0, 256, size=(250, 333, 3), dtype=np.uint8)
    result = inference_model(model, image)
    assert seen == ([(512, 512)] * 2 if options else [(512, 682)])
    assert result.pred_sem_seg.data.shape == (1, 250, 333)
    assert result.seg_logits.data.shape == (len(SEG_CLASSES), 250, 333)
    assert torch.isfinite(result.seg_logits.data).all()


USER_CONFIG = '''
_base_ = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(_delete_=True, type='CoaT', arch={arch}),
    neck=dict(in_channels={dims}, out_channels=16),
    decode_head=dict(in_channels=[16, 16, 16, 16], channels=16, num_classes={num_classes}))
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(type='BaseSegDataset', data_root='{root}', img_suffix='.png',
                 metainfo=dict(classes={classes}),
                 data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
                 pipeline=pipeline))
train_cfg = dict(max_iters=2, val_interval=100)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = None
test_dataloader = None
test_evaluator = None
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
'''


def test_user_config_outside_the_repository(seg_shapes, tmp_path):
    """A config of the user's own, in their own folder, run from there by tools/train.py in a
    fresh process: `custom_imports` alone makes `type='CoaT'` available under the mmseg scope."""
    config = tmp_path / 'my_coat_fpn.py'
    config.write_text(USER_CONFIG.format(
        arch=TINY_LITE, dims=TINY_LITE['embed_dims'], num_classes=len(SEG_CLASSES),
        root=seg_shapes, classes=SEG_CLASSES))
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'train.py'), str(config)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-5000:]
    work_dir = tmp_path / 'work_dirs' / 'my_coat_fpn'
    assert (work_dir / 'iter_2.pth').is_file()
    assert [r['step'] for r in scalars(work_dir) if 'loss' in r] == [1, 2]
    # mmseg's own inference API, in a process that never imports coat_backbone itself: the
    # config's custom_imports register CoaT and let torch read the training checkpoint.
    image = sorted(seg_shapes_paths(seg_shapes, 'val')[0].iterdir())[0]
    infer = (f'from mmseg.apis import inference_model, init_model\n'
             f'model = init_model({str(config)!r}, {str(work_dir / "iter_2.pth")!r}, '
             f'device="cpu")\n'
             f'print(tuple(inference_model(model, {str(image)!r}).pred_sem_seg.shape))\n')
    result = subprocess.run([sys.executable, '-c', infer], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-5000:]
    assert result.stdout.strip().splitlines()[-1] == '(64, 64)'
