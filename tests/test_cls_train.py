"""ImageNet-style pretraining end to end on the synthetic ImageNet-layout dataset, shrunk to CPU
size (see cls_helpers): training learns, evaluation reproduces the Runner's accuracy in every
checkpoint format, resuming continues the run, and the checkpoint initialises the detection and
segmentation backbones as it is."""
import importlib.util
import json
import re
import runpy
import sys

import pytest
import torch
from mmengine.config import Config

from cls_helpers import TOOLS, tiny_cls_config, write_config
from coat_backbone import CheckpointError, CoaT, CoaTClassifier
from coat_backbone.checkpoint import read_checkpoint
from coat_backbone.classification import CoaTImageClassifier, load_classifier
from coat_backbone.datasets import SyntheticImageNetArgs, generate_synthetic_imagenet
from coat_backbone.engine import cli
from coat_backbone.models.coat import resolve_arch
from tiny_archs import TINY_COAT, TINY_LITE

MAX_EPOCHS = 8
ITERS_PER_EPOCH = 8  # 320 images, repeated augmentation rounds to 256 per epoch, batches of 32
NUM_CLASSES = 8
CONFIGS = TOOLS.parent / 'configs'


@pytest.fixture(scope='module')
def cls_data(tmp_path_factory):
    return generate_synthetic_imagenet(tmp_path_factory.mktemp('synthetic_imagenet'),
                                       SyntheticImageNetArgs(num_classes=NUM_CLASSES))


@pytest.fixture(scope='module')
def trained(cls_data, tmp_path_factory):
    """The demo recipe, 8 epochs, through tools/train_cls.py's code."""
    root = tmp_path_factory.mktemp('cls_run')
    config = write_config(tiny_cls_config(cls_data, root / 'work', MAX_EPOCHS),
                          root / 'tiny_cls.py')
    cli.train_main([str(config)])
    return config, root / 'work'


def config_arch(config) -> dict:
    return Config.fromfile(config).model.backbone.arch.to_dict()


def val_records(work_dir) -> list:
    (scalars,) = work_dir.glob('*/vis_data/scalars.json')
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    return [r for r in records if 'accuracy/top1' in r]


def run_eval_tool(argv, capsys) -> dict:
    spec = importlib.util.spec_from_file_location('coat_eval_cls', TOOLS / 'eval_cls.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main([str(arg) for arg in argv] + ['--num-workers', '0', '--device', 'cpu'])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    match = re.fullmatch(r'Acc@1 (\d+\.\d{3}) Acc@5 (\d+\.\d{3}) loss \d+\.\d{3} \((\d+) images\)',
                         line)
    assert match, line
    return dict(top1=float(match[1]), top5=float(match[2]), images=int(match[3]))


def test_training_learns_and_checkpoints_the_ema_weights(trained):
    _, work_dir = trained
    final = work_dir / f'epoch_{MAX_EPOCHS}.pth'
    assert (work_dir / 'last_checkpoint').read_text() == str(final)
    last = val_records(work_dir)[-1]
    chance = 100.0 / NUM_CLASSES
    assert last['accuracy/top1'] >= 3 * chance, last
    checkpoint = read_checkpoint(final)
    assert (checkpoint['meta']['epoch'], checkpoint['meta']['iter']) == (
        MAX_EPOCHS, MAX_EPOCHS * ITERS_PER_EPOCH)
    assert all(key.startswith('backbone.') for key in checkpoint['state_dict'])
    # EMAHook: 'state_dict' holds the averaged weights, 'ema_state_dict' the raw ones.
    raw = checkpoint['ema_state_dict']
    assert int(raw['steps']) == MAX_EPOCHS * ITERS_PER_EPOCH
    key = 'backbone.head.weight'
    assert not torch.equal(checkpoint['state_dict'][key], raw['module.' + key])


def test_eval_tool_matches_the_runner_in_every_format(trained, cls_data, tmp_path, capsys):
    config, work_dir = trained
    final = work_dir / f'epoch_{MAX_EPOCHS}.pth'
    val = cls_data / 'val'
    runner_metrics = val_records(work_dir)[-1]
    ours = run_eval_tool([final, val, '--config', config], capsys)
    assert ours == dict(top1=runner_metrics['accuracy/top1'],
                        top5=runner_metrics['accuracy/top5'], images=80)

    # The same weights as an official {'model': ...} file and as bare timm weights.
    arch = config_arch(config)
    classifier = load_classifier(str(final), arch=arch)
    torch.save({'model': classifier.state_dict(), 'epoch': 7}, tmp_path / 'official.pth')
    torch.save(classifier.state_dict(), tmp_path / 'timm.pth')
    for name in ('official.pth', 'timm.pth'):
        assert run_eval_tool([tmp_path / name, val, '--config', config], capsys) == ours

    raw = run_eval_tool([final, val, '--config', config, '--raw-weights'], capsys)
    assert raw['images'] == 80 and raw['top1'] >= 100.0 / NUM_CLASSES
    with pytest.raises(CheckpointError, match="no 'ema_state_dict'"):
        load_classifier(str(tmp_path / 'official.pth'), arch=arch, use_raw_weights=True)
    # Without an arch, the weights' shapes give the training config's.
    assert load_classifier(str(final)).arch_settings == resolve_arch(arch)
    # The training config's arch dict and evaluation transform, given on the command line.
    transform = Config.fromfile(config).test_dataloader.dataset.transform
    assert run_eval_tool([final, val, '--arch', repr(arch), '--img-size', transform.input_size,
                          '--crop-pct', transform.crop_pct, '--crop-mode', transform.crop_mode],
                         capsys) == ours


def test_eval_tool_names_bad_input(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('coat_eval_cls', TOOLS / 'eval_cls.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    weights = tmp_path / 'timm.pth'
    torch.save(CoaT(TINY_COAT).state_dict(), weights)
    classifier = tmp_path / 'classifier.pth'
    torch.save(CoaTClassifier(TINY_LITE, num_classes=5).state_dict(), classifier)
    for name in ('cat', 'dog'):
        (tmp_path / 'two_classes' / name).mkdir(parents=True)
    for argv, message in (
            ([weights, tmp_path, '--config', CONFIGS / 'mask_rcnn_coat_small_fpn_1x.py'],
             'is not a classification config'),
            ([weights, tmp_path, '--config', tmp_path / 'missing.py'], 'Config file not found'),
            ([tmp_path / 'missing.pth', tmp_path, '--arch', 'lite_tiny'], 'not found'),
            ([weights, tmp_path / 'no_such_dir', '--arch', 'lite_tiny'],
             'DATA_DIR {} is not a folder'.format(tmp_path / 'no_such_dir')),
            ([classifier, tmp_path / 'two_classes', '--arch', repr(TINY_LITE)],
             "has 2 class folders but the checkpoint's head has 5 classes")):
        assert tool.main([str(arg) for arg in argv]) == 2
        assert message in capsys.readouterr().err


def test_demo_refuses_to_train_over_an_earlier_run(tmp_path):
    spec = importlib.util.spec_from_file_location('coat_demo_cls', TOOLS / 'demo_cls_synthetic.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    (tmp_path / 'epoch_8.pth').write_bytes(b'an earlier run')
    with pytest.raises(SystemExit, match=r'holds an earlier run \(epoch_8.pth\).*Give the new '
                       r'run another --work-dir, or pass --force') as refusal:
        tool.main(['--work-dir', str(tmp_path)])
    assert '--resume' not in str(refusal.value)  # the demo has none
    assert (tmp_path / 'epoch_8.pth').read_bytes() == b'an earlier run'


def test_test_tool_reports_accuracy(trained, tmp_path):
    config, work_dir = trained
    cli.test_main([str(config), str(work_dir / f'epoch_{MAX_EPOCHS}.pth'), '--work-dir',
                   str(tmp_path)])
    (log,) = tmp_path.glob('*/*.log')
    top1 = re.findall(r'accuracy/top1: (\d+\.\d+)', log.read_text())
    assert top1 and float(top1[-1]) == val_records(work_dir)[-1]['accuracy/top1']


def test_resume_continues_the_run(trained, tmp_path, monkeypatch):
    """tools/train_cls.py --resume CHECKPOINT, run in this process (the script itself)."""
    config, work_dir = trained
    middle = MAX_EPOCHS // 2
    monkeypatch.setattr(sys, 'argv', [
        'train_cls.py', str(config), '--work-dir', str(tmp_path), '--resume',
        str(work_dir / f'epoch_{middle}.pth'),
        # A run of the same config started within the same second would otherwise share its
        # experiment name, and so its logger and log file, with this one.
        '--cfg-options', 'experiment_name=resume_test'])
    runpy.run_path(str(TOOLS / 'train_cls.py'), run_name='__main__')
    (log,) = tmp_path.glob('*/*.log')
    assert f'resumed epoch: {middle}, iter: {middle * ITERS_PER_EPOCH}' in log.read_text()
    final = read_checkpoint(tmp_path / f'epoch_{MAX_EPOCHS}.pth')
    total = MAX_EPOCHS * ITERS_PER_EPOCH
    assert (final['meta']['epoch'], final['meta']['iter']) == (MAX_EPOCHS, total)
    # The optimizer moments and the weight average continued where the checkpoint left them.
    assert max(int(state['step']) for state in final['optimizer']['state'].values()) == total
    assert int(final['ema_state_dict']['steps']) == total


def backbone_weights(checkpoint_path) -> dict:
    state = read_checkpoint(checkpoint_path)['state_dict']
    return {key[len('backbone.'):]: value for key, value in state.items()}


def assert_loaded(backbone: CoaT, expected: dict) -> None:
    state = backbone.state_dict()
    assert state.keys() <= expected.keys()
    assert all(torch.equal(value, expected[key]) for key, value in state.items())


def test_checkpoint_initialises_detection_and_segmentation_backbones(trained):
    """One lineage: no conversion, no missing keys (loading is strict), the EMA weights."""
    config, work_dir = trained
    arch = config_arch(config)
    checkpoint = str(work_dir / f'epoch_{MAX_EPOCHS}.pth')
    expected = backbone_weights(checkpoint)
    pretrained = dict(type='Pretrained', checkpoint=checkpoint)

    backbone = CoaT(arch=arch, init_cfg=pretrained)
    backbone.init_weights()
    assert_loaded(backbone, expected)

    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.registry import init_default_scope
    detector_cfg = Config.fromfile(str(CONFIGS / 'mask_rcnn_coat_lite_mini_fpn_1x.py')).model
    detector_cfg.backbone.update(arch=arch, init_cfg=pretrained)
    detector_cfg.neck.in_channels = arch['embed_dims']
    init_default_scope('mmdet')
    detector = MMDET_MODELS.build(detector_cfg)
    detector.init_weights()
    assert_loaded(detector.backbone, expected)

    from mmseg.registry import MODELS as MMSEG_MODELS
    segmentor_cfg = Config.fromfile(
        str(CONFIGS / 'upernet_coat_lite_tiny_512x512_160k_ade20k.py')).model
    segmentor_cfg.backbone.update(arch=arch, init_cfg=pretrained)
    segmentor_cfg.decode_head.in_channels = arch['embed_dims']
    segmentor_cfg.auxiliary_head.in_channels = arch['embed_dims'][2]
    init_default_scope('mmseg')
    segmentor = MMSEG_MODELS.build(segmentor_cfg)
    segmentor.init_weights()
    assert_loaded(segmentor.backbone, expected)


def test_parallel_block_classifier_checkpoint_fits_the_backbone(tmp_path):
    """The same with parallel blocks, whose classifier adds norm2/norm3 and `aggregate`: a
    checkpoint in the layout the Runner writes (`state_dict` of CoaTImageClassifier)."""
    model = CoaTImageClassifier(dict(type='CoaTClassifier', arch=TINY_COAT, num_classes=5))
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), tmp_path / 'cls.pth')
    backbone = CoaT(arch=TINY_COAT,
                    init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'cls.pth')))
    backbone.init_weights()
    assert_loaded(backbone, {key[len('backbone.'):]: value
                             for key, value in model.state_dict().items()})
