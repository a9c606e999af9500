"""Tests of the synthetic COCO shapes generator: determinism, valid COCO, consistent annotations."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from coat_backbone.datasets import SyntheticImageNetArgs, shapes
from coat_backbone.datasets.shapes import (CocoShapesArgs, SegShapesArgs, coco_shapes_paths,
                                           generate_coco_shapes, generate_seg_shapes)
from coat_backbone.engine.demo import load_demo_config, read_generated_data
from tool_runner import TOOLS, load_tool

REPO = TOOLS.parent
SMALL = CocoShapesArgs(num_train=6, num_val=3, img_size=64, max_objects=4, min_radius=4.0,
                       max_radius=12.0, seed=3)


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob('*') if p.is_file()}


def test_same_args_give_identical_bytes(tmp_path):
    first = _files(generate_coco_shapes(tmp_path / 'a', SMALL))
    second = _files(generate_coco_shapes(tmp_path / 'b', SMALL))
    assert len(first) == 3 + SMALL.num_train + SMALL.num_val  # manifest and two json files
    assert first == second
    reseeded = CocoShapesArgs(**{**vars(SMALL), 'seed': 4})
    other = _files(generate_coco_shapes(tmp_path / 'c', reseeded))
    assert other['train/000000.png'] != first['train/000000.png']


@pytest.mark.parametrize('split', ['train', 'val'])
def test_annotations_match_masks(tmp_path, split):
    root = generate_coco_shapes(tmp_path, SMALL)
    ann_file, img_dir = coco_shapes_paths(root, split)
    coco = COCO(str(ann_file))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(shapes.SHAPE_CLASSES)
    assert len(coco.getImgIds()) == (SMALL.num_train if split == 'train' else SMALL.num_val)
    assert len(coco.getAnnIds()) >= len(coco.getImgIds())  # at least one shape per image
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        assert (img_dir / info['file_name']).is_file()
        covered = np.zeros((info['height'], info['width']), dtype=np.int64)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_id)):
            mask = coco.annToMask(ann).astype(bool)
            ys, xs = np.nonzero(mask)
            assert ann['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                   ys.max() - ys.min() + 1]
            assert ann['area'] == mask.sum()
            assert ann['iscrowd'] == 0
            covered += mask
        # Visible masks of occluding shapes never overlap.
        assert covered.max() == 1


def test_masks_are_the_visible_parts(monkeypatch):
    drawn = []

    def record(*args):
        drawn.append(shape_mask(*args))
        return drawn[-1]

    shape_mask = shapes._shape_mask
    monkeypatch.setattr(shapes, '_shape_mask', record)
    args = CocoShapesArgs(img_size=64, max_objects=4, min_radius=10.0, max_radius=14.0)
    occluded = 0
    for index in range(20):
        drawn.clear()
        _, instances = shapes.render_shapes_scene(np.random.default_rng([0, 0, index]), args)
        on_top = np.zeros((64, 64), dtype=bool)
        for _, visible in reversed(instances):
            # Each mask is a whole drawn shape minus the shapes painted over it, and keeps at
            # least half of the shape.
            full = [m for m in drawn if np.array_equal(m & ~on_top, visible)]
            assert full and visible.sum() >= 0.5 * full[0].sum()
            occluded += int(not np.array_equal(full[0], visible))
            on_top |= visible
    assert occluded > 0


def test_splits_are_disjoint(tmp_path):
    root = generate_coco_shapes(tmp_path, SMALL)
    pixels = {split: {p.read_bytes() for p in coco_shapes_paths(root, split)[1].glob('*.png')}
              for split in ('train', 'val')}
    assert len(pixels['train']) == SMALL.num_train and len(pixels['val']) == SMALL.num_val
    assert not pixels['train'] & pixels['val']


def test_regeneration_is_skipped_or_redone(tmp_path, monkeypatch):
    root = generate_coco_shapes(tmp_path, SMALL)
    before = _files(root)

    def fail(*args, **kwargs):
        raise AssertionError('an up-to-date dataset was regenerated')

    with monkeypatch.context() as patch:
        patch.setattr(shapes, 'render_shapes_scene', fail)
        generate_coco_shapes(tmp_path, SMALL)
    assert _files(root) == before

    # A missing image or other arguments trigger a full rewrite; stale images disappear.
    (root / 'val' / '000000.png').unlink()
    generate_coco_shapes(tmp_path, SMALL)
    assert _files(root) == before
    fewer = CocoShapesArgs(**{**vars(SMALL), 'num_val': 1})
    generate_coco_shapes(tmp_path, fewer)
    assert sorted(p.name for p in (root / 'val').iterdir()) == ['000000.png']
    assert json.loads((root / 'manifest.json').read_text())['args']['num_val'] == 1


@pytest.mark.parametrize('generate, version', [(generate_coco_shapes, 'COCO_SHAPES_VERSION'),
                                               (generate_seg_shapes, 'SEG_SHAPES_VERSION')])
def test_a_new_drawing_version_regenerates(generate, version, tmp_path, monkeypatch):
    args = SMALL if generate is generate_coco_shapes else SegShapesArgs(**vars(SMALL))
    generate(tmp_path, args)
    drawn = []
    monkeypatch.setattr(shapes, version, getattr(shapes, version) + 1)
    render = shapes.render_shapes_scene
    monkeypatch.setattr(shapes, 'render_shapes_scene',
                        lambda *a, **k: drawn.append(1) or render(*a, **k))
    generate(tmp_path, args)
    assert len(drawn) == SMALL.num_train + SMALL.num_val
    assert json.loads((tmp_path / 'manifest.json').read_text())['version'] == \
        getattr(shapes, version)


def test_bad_input_is_refused(tmp_path):
    (tmp_path / 'notes.txt').write_text('not a dataset')
    with pytest.raises(FileExistsError, match='pass an empty or new directory'):
        generate_coco_shapes(tmp_path, SMALL)
    with pytest.raises(ValueError, match='img_size'):
        generate_coco_shapes(tmp_path / 'x', CocoShapesArgs(img_size=16))
    with pytest.raises(ValueError, match='max_radius'):
        generate_coco_shapes(tmp_path / 'x', CocoShapesArgs(min_radius=30, max_radius=20))
    with pytest.raises(ValueError, match='split'):
        coco_shapes_paths(tmp_path, 'test')


def test_only_its_own_datasets_are_ever_replaced(tmp_path):
    foreign = tmp_path / 'foreign'
    (foreign / 'train').mkdir(parents=True)
    (foreign / 'train' / 'precious.jpg').write_bytes(b'user data')
    (foreign / 'manifest.json').write_text('{"my": "own dataset"}')
    with pytest.raises(FileExistsError, match='holds no manifest.json of a synthetic dataset'):
        generate_coco_shapes(foreign, SMALL)
    assert (foreign / 'train' / 'precious.jpg').read_bytes() == b'user data'
    seg_root = generate_seg_shapes(tmp_path / 'seg', SegShapesArgs(
        num_train=1, num_val=1, img_size=32, min_radius=2.0, max_radius=8.0))
    with pytest.raises(FileExistsError, match="holds the synthetic 'seg_shapes' dataset"):
        generate_coco_shapes(seg_root, SMALL)
    assert (seg_root / 'img_dir' / 'train' / '000000.png').is_file()


def test_an_interrupted_run_is_redone(tmp_path, monkeypatch):
    calls = []
    render = shapes.render_shapes_scene

    def crash_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return render(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(shapes, 'render_shapes_scene', crash_on_third)
        with pytest.raises(KeyboardInterrupt):
            generate_coco_shapes(tmp_path / 'a', SMALL)
    assert json.loads((tmp_path / 'a' / 'manifest.json').read_text())['incomplete']
    assert _files(generate_coco_shapes(tmp_path / 'a', SMALL)) == _files(
        generate_coco_shapes(tmp_path / 'b', SMALL))


@pytest.mark.parametrize('demo', ['demo_synthetic', 'demo_seg_synthetic'])
def test_demos_refuse_no_pictures_before_training(demo, monkeypatch, capsys):
    tool = load_tool(demo)
    monkeypatch.setattr('sys.argv', [f'{demo}.py', '--num-pictures', '0'])
    with pytest.raises(SystemExit) as exit_info:
        tool.main()
    assert exit_info.value.code == 2
    assert '--num-pictures 0: draw at least one picture' in capsys.readouterr().err


# Each demo's config and the form of its `synthetic_data`.
DEMO_CONFIGS = {'demo/mask_rcnn_coat_demo.py': CocoShapesArgs,
                'demo/fpn_coat_demo_seg.py': SegShapesArgs,
                'imagenet/demo_synthetic_imagenet.py': SyntheticImageNetArgs}


@pytest.mark.parametrize('config', DEMO_CONFIGS)
def test_demos_read_the_data_they_generate(config, tmp_path):
    """`--cfg-options data_root=...` moves the generated data; every loader and evaluator must
    follow it, although the config file built their paths from its own data_root."""
    elsewhere = tmp_path / 'elsewhere'
    cfg, _ = load_demo_config(str(REPO / 'configs' / config), {'data_root': str(elsewhere)},
                              str(tmp_path / 'work'), force=False, template='the demo config',
                              data_args=DEMO_CONFIGS[config])
    read_generated_data(cfg, Path(cfg.data_root))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        assert Path(dataset.get('data_root') or dataset.root).is_relative_to(elsewhere), loader
    for evaluator in ('val_evaluator', 'test_evaluator'):
        if 'ann_file' in cfg[evaluator]:
            assert cfg[evaluator].ann_file == str(coco_shapes_paths(elsewhere, 'val')[0])


@pytest.mark.parametrize('config', DEMO_CONFIGS)
def test_demos_keep_the_users_files_and_checkpoint_atomically(config, tmp_path):
    """The Runner writes the merged config to <work_dir>/<config name>: a demo, like
    tools/train.py, refuses a work dir where that would replace a file of the user's. And the
    demo's checkpoints are written whole or not at all, as every other config's."""
    path = str(REPO / 'configs' / config)
    notes = tmp_path / Path(config).name
    notes.write_text('# my notes\n')

    def load(work_dir):
        return load_demo_config(path, None, str(work_dir), force=False, template='the demo',
                                data_args=DEMO_CONFIGS[config])

    with pytest.raises(FileExistsError, match='does not look like a config mmengine wrote'):
        load(tmp_path)
    with pytest.raises(NotADirectoryError, match='is a file, not a folder'):
        load(notes)
    assert notes.read_text() == '# my notes\n'
    cfg, _ = load(tmp_path / 'work')
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'


def test_demo_data_reaches_wrapped_datasets_and_evaluator_lists(tmp_path):
    cfg, _ = load_demo_config(str(REPO / 'configs' / 'demo' / 'mask_rcnn_coat_demo.py'), None,
                              str(tmp_path / 'work'), force=False, template='the demo config',
                              data_args=CocoShapesArgs)
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2, dataset=dict(
        type='ConcatDataset', datasets=[cfg.train_dataloader.dataset] * 2))
    cfg.val_evaluator = [cfg.val_evaluator, dict(type='VOCMetric')]
    read_generated_data(cfg, tmp_path / 'data')
    assert [part.data_root for part in cfg.train_dataloader.dataset.dataset.datasets] == [
        str(tmp_path / 'data')] * 2
    assert cfg.val_evaluator[0].ann_file == str(coco_shapes_paths(tmp_path / 'data', 'val')[0])
    cfg.test_dataloader.dataset = dict(type='SomeDataset', ann_file='x.json')
    with pytest.raises(ValueError, match=r'test_dataloader.dataset has neither `data_root` nor '
                       r'`root`'):
        read_generated_data(cfg, tmp_path / 'data')


def test_demo_config_needs_synthetic_data(tmp_path):
    with pytest.raises(ValueError, match='lacks `synthetic_data` or `data_root`; use a config '
                       'derived from configs/demo/mask_rcnn_coat_demo.py'):
        load_demo_config(str(REPO / 'configs' / 'mask_rcnn_coat_lite_mini_fpn_1x.py'), None,
                         str(tmp_path), force=False, template='configs/demo/mask_rcnn_coat_demo.py',
                         data_args=CocoShapesArgs)


def refusal_of(tool: str, args: list, monkeypatch) -> str:
    """The message tools/<tool>'s main exits with (in this process; a command line would print it
    and exit with status 1, without a traceback)."""
    monkeypatch.setattr('sys.argv', [tool, *args])
    with pytest.raises(SystemExit) as exit_info:
        load_tool(tool.removesuffix('.py')).main()
    assert isinstance(exit_info.value.code, str)
    return exit_info.value.code


@pytest.mark.parametrize('tool', ['demo_synthetic.py', 'demo_seg_synthetic.py'])
def test_a_demo_takes_its_own_config_up_to_an_earlier_run(tool, tmp_path, monkeypatch):
    """The demo's default config passes every check of load_demo_config, the last being the
    refusal to train over an earlier run in the work dir (the classification demo's is in
    test_cls_train.py)."""
    (tmp_path / 'epoch_1.pth').write_bytes(b'an earlier run')
    message = refusal_of(tool, ['--work-dir', str(tmp_path)], monkeypatch)
    assert 'holds an earlier run (epoch_1.pth)' in message
    assert (tmp_path / 'epoch_1.pth').read_bytes() == b'an earlier run'


@pytest.mark.parametrize('tool, config, message', [
    ('demo_synthetic.py', 'imagenet/demo_synthetic_imagenet.py', 'lacks `metainfo.classes`'),
    ('demo_synthetic.py', 'demo/fpn_coat_demo_seg.py', 'lacks `metainfo.classes`'),
    ('demo_seg_synthetic.py', 'demo/mask_rcnn_coat_demo.py',
     'lacks `model.decode_head.num_classes`'),
    ('demo_cls_synthetic.py', 'demo/mask_rcnn_coat_demo.py',
     r"`synthetic_data` does not fit this demo \(.*unexpected keyword argument 'num_train'"),
])
def test_another_demos_config_is_refused_before_any_work(tool, config, message, tmp_path,
                                                         monkeypatch):
    work_dir = tmp_path / 'work'
    refusal = refusal_of(tool, ['--config', str(REPO / 'configs' / config),
                                '--work-dir', str(work_dir)], monkeypatch)
    assert re.search(message + '.*; use a config derived from configs/', refusal)
    assert not work_dir.exists()


@pytest.mark.parametrize('tool, option, message', [
    ('demo_synthetic.py', 'metainfo.classes=[triangle,square,circle]',
     r"`metainfo.classes` is \['triangle', 'square', 'circle'\], but the generated data needs "
     r"\('circle', 'square', 'triangle'\)"),
    ('demo_seg_synthetic.py', 'model.decode_head.num_classes=3',
     '`model.decode_head.num_classes` is 3, but the generated data needs 4'),
])
def test_a_setting_the_generated_data_rules_out_is_refused_before_any_work(
        tool, option, message, tmp_path, monkeypatch):
    work_dir = tmp_path / 'work'
    refusal = refusal_of(tool, ['--work-dir', str(work_dir), '--cfg-options', option],
                         monkeypatch)
    assert re.search(message + '; use a config derived from configs/', refusal)
    assert not work_dir.exists()


def test_segmentation_and_classification_data_need_no_pycocotools(tmp_path):
    """pycocotools comes with the [det] extra only."""
    script = f"""
import sys
sys.modules['pycocotools'] = None  # any import of it fails
from coat_backbone.datasets import SyntheticImageNetArgs, generate_synthetic_imagenet
from coat_backbone.datasets.shapes import SegShapesArgs, generate_seg_shapes
generate_seg_shapes({str(tmp_path / 'seg')!r}, SegShapesArgs(num_train=1, num_val=1, img_size=64,
                                                               min_radius=4.0, max_radius=12.0))
generate_synthetic_imagenet({str(tmp_path / 'cls')!r}, SyntheticImageNetArgs(
    num_classes=2, train_per_class=1, val_per_class=1))
"""
    subprocess.run([sys.executable, '-c', script], check=True, cwd=REPO)
    assert (tmp_path / 'seg' / 'manifest.json').is_file()
    assert (tmp_path / 'cls' / 'manifest.json').is_file()
