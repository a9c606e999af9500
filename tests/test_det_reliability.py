"""Reliability of long runs, on a toy mmengine model (no mmdet): weights-only loading of mmengine
checkpoints, checkpoints that are whole or absent after a kill, resuming, stopping on NaN."""
import pickle
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.registry import METRICS
from mmengine.runner import Runner
from torch.utils.data import Dataset

from coat_backbone import CheckpointError
from coat_backbone.checkpoint import read_checkpoint
from coat_backbone.engine import NonFiniteLossError, adapt_to_machine
from coat_backbone.engine import cli, runtime
from coat_backbone.engine.runtime import (check_neck_fits_backbone, check_weights_to_load,
                                          check_work_dir, enable_amp, enable_auto_scale_lr,
                                          refuse_to_overwrite_a_run, set_resume)
from coat_backbone.engine.serialization import WEIGHTS_ONLY_BY_DEFAULT
from tool_runner import free_port, refusal

REPO = Path(__file__).resolve().parents[1]


class ToyModel(BaseModel):
    """Linear regression; the loss is NaN for samples whose input is NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x, y, mode='loss'):
        prediction = self.linear(x).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((prediction - y) ** 2).mean())
        return prediction


class ToyData(Dataset):
    """8 samples; the `nan_at`-th sample drawn (counting from 0 across epochs) has a NaN input."""

    def __init__(self, nan_at: int = -1) -> None:
        self.nan_at = nan_at
        self.drawn = 0

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict:
        value = float('nan') if self.drawn == self.nan_at else float(index)
        self.drawn += 1
        return dict(x=torch.tensor([value, 1.0]), y=torch.tensor(float(index)))


def toy_runner(work_dir, max_epochs, resume=False, max_keep_ckpts=-1, nan_at=-1,
               checkpoint_hook='AtomicCheckpointHook') -> Runner:
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyData(nan_at), batch_size=2, num_workers=0,
                              collate_fn=dict(type='default_collate'),
                              sampler=dict(type='DefaultSampler', shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        # A 4-epoch plan, as configs state it (`end`): runs stopped early resume into the same plan.
        param_scheduler=[dict(type='MultiStepLR', milestones=[3], by_epoch=True, begin=0, end=4)],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type=checkpoint_hook, interval=1,
                                           max_keep_ckpts=max_keep_ckpts)),
        custom_hooks=[dict(type='NonFiniteLossHook')],
        resume=resume,
        randomness=dict(seed=0))


def adam_steps(runner: Runner) -> int:
    return int(runner.optim_wrapper.optimizer.state_dict()['state'][0]['step'])


@pytest.mark.skipif(not WEIGHTS_ONLY_BY_DEFAULT,
                    reason='before torch 2.6 torch.load unpickles in full by default')
def test_mmengine_checkpoint_loads_weights_only(tmp_path):
    toy_runner(tmp_path, max_epochs=1).train()
    checkpoint = torch.load(tmp_path / 'epoch_1.pth', weights_only=True)
    assert isinstance(checkpoint['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    assert checkpoint['message_hub']['log_scalars']['train/loss'].mean() > 0
    # Without the allow-list (a fresh interpreter that never imports coat_backbone) it fails:
    plain = subprocess.run(
        [sys.executable, '-c', f'import torch; torch.load({str(tmp_path / "epoch_1.pth")!r})'],
        capture_output=True, text=True)
    assert plain.returncode != 0 and 'Weights only load failed' in plain.stderr


def test_engine_does_not_import_mmdet_mmseg_or_mmcv_ops():
    code = ('import sys, coat_backbone.engine.cli; '
            'print(sorted(m for m in sys.modules if m.split(".")[0] in ("mmdet", "mmseg") '
            'or m.startswith(("mmcv.ops", "mmcv._ext"))))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == '[]'


@pytest.mark.skipif(not WEIGHTS_ONLY_BY_DEFAULT,
                    reason='before torch 2.6 nothing is allow-listed')
def test_weights_only_still_refuses_arbitrary_getattr(tmp_path):
    # A function nested in a class pickles as getattr(HistoryBuffer, '__init__').
    torch.save({'hook': HistoryBuffer.__init__}, tmp_path / 'evil.pth')
    with pytest.raises(pickle.UnpicklingError, match='Refusing getattr'):
        torch.load(tmp_path / 'evil.pth', weights_only=True)


def test_resume_restores_optimizer_scheduler_and_counters(tmp_path):
    toy_runner(tmp_path, max_epochs=2).train()
    resumed = toy_runner(tmp_path, max_epochs=4, resume=True)
    resumed.train()
    assert resumed.epoch == 4 and resumed.iter == 16
    assert adam_steps(resumed) == 16  # Adam moments carried over all 16 updates
    # The scheduler's count was restored: the lr dropped at epoch 3, not 3 epochs after resuming.
    assert resumed.optim_wrapper.get_lr()['lr'] == [pytest.approx(0.001)]


KILLING_DRIVER = '''
import os, signal, sys
sys.path.insert(0, {tests!r})
from mmengine.fileio.backends.local_backend import LocalBackend
import test_det_reliability as t

saves = []
original_put = LocalBackend.put

def put(self, obj, filepath):
    if '.pth' in str(filepath):
        saves.append(filepath)
        if len(saves) == 2:  # SIGKILL halfway through writing the second checkpoint
            with open(filepath, 'wb') as file:
                file.write(obj[:len(obj) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    return original_put(self, obj, filepath)

LocalBackend.put = put
t.toy_runner({work_dir!r}, max_epochs=3, max_keep_ckpts=1).train()
'''


def test_kill_while_writing_checkpoint_leaves_last_checkpoint_loadable(tmp_path):
    driver = tmp_path / 'driver.py'
    driver.write_text(KILLING_DRIVER.format(tests=str(Path(__file__).parent),
                                            work_dir=str(tmp_path / 'run')))
    killed = subprocess.run([sys.executable, str(driver)], capture_output=True, text=True,
                            cwd=REPO)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    run = tmp_path / 'run'
    last = (run / 'last_checkpoint').read_text()
    assert last == str(run / 'epoch_1.pth')  # kept although max_keep_ckpts=1
    assert read_checkpoint(last)['meta']['epoch'] == 1
    assert not (run / 'epoch_2.pth').exists() and (run / 'epoch_2.pth.partial').exists()
    # One the resumed run would not overwrite by itself (epoch 9 is never saved), and a file of
    # the user's that only ends like one: not the hook's, so kept.
    (run / 'epoch_9.pth.partial').write_bytes(b'half a checkpoint')
    (run / 'coat_small_official.pth.partial').write_bytes(b'a download of the user')

    resumed = toy_runner(run, max_epochs=3, resume=True, max_keep_ckpts=1)
    resumed.train()
    assert adam_steps(resumed) == 12
    assert sorted(p.name for p in run.glob('epoch_*')) == ['epoch_3.pth']
    assert (run / 'coat_small_official.pth.partial').read_bytes() == b'a download of the user'


def test_non_finite_loss_stops_training_naming_the_iteration(tmp_path):
    runner = toy_runner(tmp_path, max_epochs=2, nan_at=12)  # epoch 2, batch 3 = iteration 7
    with pytest.raises(NonFiniteLossError,
                       match=r'iteration 7 \(epoch 2, batch 3 of the epoch\): loss=nan'):
        runner.train()
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_1.pth')
    assert not (tmp_path / 'epoch_2.pth').exists()


def test_non_finite_loss_in_an_iteration_based_run_names_only_the_iteration(tmp_path):
    runner = Runner(
        model=ToyModel(), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=ToyData(nan_at=12), batch_size=2, num_workers=0,
                              collate_fn=dict(type='default_collate'),
                              sampler=dict(type='InfiniteSampler', shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=10),
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False,
                                           interval=5)),
        custom_hooks=[dict(type='NonFiniteLossHook')])
    with pytest.raises(NonFiniteLossError, match=r'at iteration 7: loss=nan'):
        runner.train()
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_5.pth')


def test_resume_auto_rejects_a_dangling_last_checkpoint(tmp_path):
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_9.pth'))
    cfg = Config(dict(work_dir=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match='epoch_9.pth.*does not exist'):
        set_resume(cfg, 'auto')
    with pytest.raises(FileNotFoundError, match='no such checkpoint'):
        set_resume(cfg, str(tmp_path / 'missing.pth'))
    untouched = Config(dict(work_dir=str(tmp_path)))
    set_resume(untouched, None)
    assert 'resume' not in untouched


def test_files_that_are_no_checkpoint_are_refused_before_the_run(tmp_path):
    notes = tmp_path / 'notes.pth'
    notes.write_text('not weights')
    with pytest.raises(CheckpointError, match=f'{notes} is not a PyTorch checkpoint'):
        check_weights_to_load(Config(dict(load_from=str(notes))))
    with pytest.raises(FileNotFoundError, match='Checkpoint file not found: .*absent.pth'):
        check_weights_to_load(Config(dict(load_from=str(tmp_path / 'absent.pth'))))
    for cfg in (Config(dict()), Config(dict(load_from='https://host/w.pth'))):
        check_weights_to_load(cfg)  # nothing to load; a URL is read by mmengine
    # --resume: the file last_checkpoint names, cut short, and what to do instead.
    last = tmp_path / 'epoch_2.pth'
    torch.save({'state_dict': {'w': torch.ones(64)}}, last)
    last.write_bytes(last.read_bytes()[:200])
    (tmp_path / 'last_checkpoint').write_text(str(last))
    with pytest.raises(CheckpointError, match=r'epoch_2.pth is truncated or damaged .*resume from '
                       r'an earlier checkpoint of .*: --resume .*epoch_N\.pth\.$'):
        set_resume(Config(dict(work_dir=str(tmp_path))), 'auto')


def test_a_neck_or_head_that_does_not_fit_the_backbone_is_named():
    def config(**model):
        return Config(dict(model=dict(dict(backbone=dict(type='CoaT', arch='lite_small')),
                                      **model)))

    fpn = dict(type='FPN', in_channels=[64, 128, 320, 512], out_channels=256)
    check_neck_fits_backbone(config(neck=fpn))
    tiny_fpn = {**fpn, 'in_channels': [64, 128, 256, 320]}  # lite_tiny's, copied by mistake
    with pytest.raises(ValueError, match=r'model.neck.in_channels=\[64, 128, 256, 320\] does not '
                       r"fit the backbone: CoaT with arch='lite_small' and out_indices=\(0, 1, 2, "
                       r'3\) returns maps of \[64, 128, 320, 512\] channels\. Set '
                       r'model.neck.in_channels=\[64, 128, 320, 512\]\.'):
        check_neck_fits_backbone(config(neck=tiny_fpn))
    # Deformable DETR's ChannelMapper on three scales; a neck given as a list.
    detr = dict(type='ChannelMapper', in_channels=[128, 320, 512], out_channels=256)
    detr_cfg = config(neck=[detr])
    detr_cfg.model.backbone.out_indices = (1, 2, 3)
    check_neck_fits_backbone(detr_cfg)
    detr_cfg.model.backbone.out_indices = (0, 1, 2)
    with pytest.raises(ValueError, match=r'\[64, 128, 320\] channels'):
        check_neck_fits_backbone(detr_cfg)
    # mmseg's UperNet: no neck, heads picking maps by in_index.
    uper = dict(type='UPerHead', in_channels=[64, 128, 320, 512], in_index=[0, 1, 2, 3])
    aux = dict(type='FCNHead', in_channels=320, in_index=2)
    check_neck_fits_backbone(config(decode_head=uper, auxiliary_head=aux))
    with pytest.raises(ValueError, match=r'model.auxiliary_head\[0\].in_channels=1024 .*Set '
                       r'model.auxiliary_head\[0\].in_channels=320\.'):
        check_neck_fits_backbone(config(decode_head=uper, auxiliary_head=[{**aux,
                                                                           'in_channels': 1024}]))
    # Not CoaT's to judge: another backbone, or a backbone its own build will refuse.
    check_neck_fits_backbone(Config(dict(model=dict(backbone=dict(type='ResNet', depth=50),
                                                    neck=tiny_fpn))))
    check_neck_fits_backbone(config(backbone=dict(type='CoaT', arch='huge'), neck=tiny_fpn))


def test_train_and_test_refuse_bad_input_in_one_line(tmp_path, capsys):
    config = tmp_path / 'my_det.py'
    config.write_text("model = dict(backbone=dict(type='CoaT', arch='lite_small'), "
                      "neck=dict(type='FPN', in_channels=[64, 128, 256, 320]))\n"
                      f"work_dir = {str(tmp_path / 'work')!r}\n")
    message = refusal(cli.train_main, [str(config)], capsys)
    assert message.startswith(f'{Path(sys.argv[0]).name}: error: model.neck.in_channels=')
    message = refusal(cli.test_main, [str(config), str(config)], capsys)
    assert f'{config} is not a PyTorch checkpoint' in message
    assert 'Config file not found: ' in refusal(cli.train_main, [str(tmp_path / 'absent.py')],
                                                capsys)


def test_resume_without_last_checkpoint_never_trains_over_checkpoints(tmp_path):
    # A checkpoint copied into a fresh work dir: `--resume` alone would start from scratch.
    torch.save({'state_dict': {'w': torch.ones(2)}}, tmp_path / 'epoch_2.pth')
    users_file = (tmp_path / 'epoch_2.pth').read_bytes()
    cfg = Config(dict(work_dir=str(tmp_path)))
    set_resume(cfg, 'auto')
    with pytest.raises(FileExistsError, match=r'\(epoch_2.pth\) without a last_checkpoint to '
                       r'resume from.*--resume .*epoch_2.pth, .*--work-dir.*--force'):
        refuse_to_overwrite_a_run(cfg, force=False)
    refuse_to_overwrite_a_run(cfg, force=True)
    from_file = Config(dict(work_dir=str(tmp_path)))
    set_resume(from_file, str(tmp_path / 'epoch_2.pth'))
    refuse_to_overwrite_a_run(from_file, force=False)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    resumed = Config(dict(work_dir=str(tmp_path), load_from='pretrained.pth'))
    set_resume(resumed, 'auto')
    assert resumed.resume and resumed.load_from is None  # mmengine reads last_checkpoint
    refuse_to_overwrite_a_run(resumed, force=False)
    assert (tmp_path / 'epoch_2.pth').read_bytes() == users_file
    # Nothing there: a new run, which keeps the config's starting weights (mmengine drops them).
    empty = Config(dict(work_dir=str(tmp_path / 'new'), load_from='pretrained.pth'))
    set_resume(empty, 'auto')
    assert 'resume' not in empty and empty.load_from == 'pretrained.pth'  # as the config says
    own = Config(dict(work_dir=str(tmp_path / 'new'), resume=True, load_from='run/epoch_3.pth'))
    set_resume(own, 'auto')
    assert own.resume and own.load_from == 'run/epoch_3.pth'
    refuse_to_overwrite_a_run(empty, force=False)
    # A work dir whose files are not this run's checkpoints: nothing to name for --resume.
    (tmp_path / 'new').mkdir()
    (tmp_path / 'new' / 'coat_lite_small_imagenet.pth').write_bytes(b'pretrained weights')
    with pytest.raises(FileExistsError, match=r'\(coat_lite_small_imagenet.pth\) without a '
                       r'last_checkpoint to resume from, .* Give the new run another --work-dir'):
        refuse_to_overwrite_a_run(empty, force=False)


def test_resume_from_a_file_never_trains_over_other_checkpoints(tmp_path):
    """A run resumed from epoch_N.pth saves epoch_{N+1}.pth onwards in its work dir."""
    run, other = tmp_path / 'run', tmp_path / 'other'
    for folder in (run, other):
        folder.mkdir()
        for epoch in (1, 2, 10, 12):  # in step order, not the names' order
            (folder / f'epoch_{epoch}.pth').write_bytes(f'{folder.name} {epoch}'.encode())
    (run / 'best_acc_epoch_10.pth').write_bytes(b'best')

    def resume_then_check(resume_from, force=False, **settings):
        cfg = Config(dict(work_dir=str(run), **settings))
        if '://' in str(resume_from):  # a config's own resume=True, load_from=URL
            cfg.resume, cfg.load_from = True, resume_from
        else:
            set_resume(cfg, str(resume_from))
        refuse_to_overwrite_a_run(cfg, force=force)

    with pytest.raises(FileExistsError, match=r'--resume .*epoch_1.pth: .*overwrite later '
                       r'checkpoints of the same run there \(epoch_2.pth, epoch_10.pth, '
                       rf'epoch_12.pth\)\. Resume from the latest \(--resume {run}/epoch_12.pth\)'
                       r'.*--work-dir.*--force'):
        resume_then_check(run / 'epoch_1.pth')
    with pytest.raises(FileExistsError, match=r'overwrite later checkpoints .*\(epoch_12.pth\)'):
        resume_then_check(run / 'best_acc_epoch_10.pth')
    with pytest.raises(FileExistsError, match=r'the checkpoints of another run there '
                       r'\(epoch_1.pth, epoch_2.pth, epoch_10.pth, epoch_12.pth\)'):
        resume_then_check(other / 'epoch_12.pth')
    with pytest.raises(FileExistsError, match='the checkpoints of another run'):
        resume_then_check('https://example.com/runs/epoch_12.pth')
    resume_then_check(run / 'epoch_12.pth')  # the latest: nothing after it
    resume_then_check(run / 'epoch_1.pth', force=True)
    resume_then_check(other / 'epoch_1.pth', force=True)
    # `--resume` alone without last_checkpoint suggests the latest file, which it accepts.
    cfg = Config(dict(work_dir=str(run)))
    set_resume(cfg, 'auto')
    with pytest.raises(FileExistsError, match=rf'Continue it with --resume {run}/epoch_12.pth, '):
        refuse_to_overwrite_a_run(cfg, force=False)
    # The config's own names for its checkpoints.
    custom = dict(default_hooks=dict(checkpoint=dict(filename_tmpl='ckpt_e{:03d}.pth')))
    for epoch in (1, 2):
        (run / f'ckpt_e{epoch:03d}.pth').write_bytes(b'custom')
    with pytest.raises(FileExistsError, match=r'same run there \(ckpt_e002.pth\)'):
        resume_then_check(run / 'ckpt_e001.pth', **custom)
    resume_then_check(run / 'ckpt_e002.pth', **custom)
    assert [(run / f'epoch_{epoch}.pth').read_bytes() for epoch in (1, 2, 10, 12)] == [
        b'run 1', b'run 2', b'run 10', b'run 12']


@METRICS.register_module()
class ImprovingMetric(BaseMetric):
    """A score that rises at every evaluation, so every epoch saves a new best checkpoint."""
    evaluations = 0

    def process(self, data_batch, data_samples) -> None:
        self.results.append(0)

    def compute_metrics(self, results) -> dict:
        ImprovingMetric.evaluations += 1
        return dict(score=float(ImprovingMetric.evaluations))


def test_a_run_resumed_from_another_keeps_that_runs_best_checkpoint(tmp_path):
    """mmengine restores the best checkpoint's path with the rest of the state, and deletes that
    file when the resumed run scores better: it is the other run's."""
    def runner(work_dir, max_epochs, load_from=None):
        loader = dict(dataset=ToyData(), batch_size=2, num_workers=0,
                      collate_fn=dict(type='default_collate'),
                      sampler=dict(type='DefaultSampler', shuffle=False))
        return Runner(
            model=ToyModel(), work_dir=str(work_dir), train_dataloader=loader,
            val_dataloader=loader, val_evaluator=dict(type='ImprovingMetric'), val_cfg=dict(),
            optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
            train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
            default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1,
                                               save_best='score', rule='greater')),
            resume=load_from is not None, load_from=load_from)

    runner(tmp_path / 'first', 2).train()
    best = tmp_path / 'first' / 'best_score_epoch_2.pth'
    assert best.is_file()
    runner(tmp_path / 'second', 4, load_from=str(tmp_path / 'first' / 'epoch_2.pth')).train()
    assert best.is_file()
    # Within one run the previous best still makes way for the next, as in mmengine.
    assert sorted(p.name for p in (tmp_path / 'second').glob('best_*')) == [
        'best_score_epoch_4.pth']


def test_work_dir_never_replaces_the_users_config(tmp_path):
    # The Runner writes the merged config to <work_dir>/<config name>.
    base = tmp_path / 'base.py'
    base.write_text('model = dict(depth=18)\n')
    own = tmp_path / 'exp' / 'exp.py'
    own.parent.mkdir()
    own.write_text("_base_ = ['../base.py']\n# my notes\nmodel = dict(depth=50)\n")
    with pytest.raises(FileExistsError, match=r'exp.py lies in the work dir .*replace your file'):
        check_work_dir(str(own), str(own.parent))
    check_work_dir(str(own), str(tmp_path / 'elsewhere'))
    # A config the Runner wrote there reads back to its own text: rewriting it loses nothing.
    Config.fromfile(str(own)).dump(str(tmp_path / 'exp' / 'dumped.py'))
    check_work_dir(str(tmp_path / 'exp' / 'dumped.py'), str(own.parent))
    with pytest.raises(NotADirectoryError, match='is a file, not a folder'):
        check_work_dir(str(own), str(base))
    with pytest.raises(NotADirectoryError, match=rf'--work-dir {base}/run: {base} is a file'):
        check_work_dir(str(own), str(base / 'run'))
    assert own.read_text().startswith("_base_ = ['../base.py']")
    # Any other file of the user's under the config's name is refused too, and kept.
    notes = tmp_path / 'notes'
    (notes / 'exp.py').mkdir(parents=True)  # a folder: refused as well
    with pytest.raises(FileExistsError, match=r'exp.py does not look like a config mmengine '
                       r'wrote \(it does not read back as a config: IsADirectoryError'):
        check_work_dir(str(own), str(notes))
    (notes / 'exp.py').rmdir()
    (notes / 'exp.py').write_text('# my notes on the last run\n')
    with pytest.raises(FileExistsError, match=r'notes/exp.py does not look like a config mmengine '
                       r'wrote \(its text is not what mmengine writes for it\), and mmengine '
                       r'would replace it .*Move it out of the work dir'):
        check_work_dir(str(own), str(notes))
    assert (notes / 'exp.py').read_text() == '# my notes on the last run\n'
    Config.fromfile(str(own)).dump(str(notes / 'exp.py'))  # an earlier run's copy: rewritten
    check_work_dir(str(own), str(notes))
    # mmengine dumps a .yaml or .json config in its own format.
    for suffix in ('.yaml', '.json'):
        config = tmp_path / f'exp{suffix}'
        Config(dict(model=dict(depth=50), lr=0.1)).dump(str(config))
        Config.fromfile(str(config)).dump(str(notes / config.name))
        check_work_dir(str(config), str(notes))


def test_amp_and_auto_scale_lr_options_reach_the_runner(tmp_path, monkeypatch):
    config = tmp_path / 'toy.py'
    config.write_text("optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', "
                      "lr=0.1))\nauto_scale_lr = dict(enable=False, base_batch_size=16)\n")
    built = []
    monkeypatch.setattr(cli, 'build_runner',
                        lambda cfg: built.append(cfg) or SimpleNamespace(train=lambda: None))
    monkeypatch.setattr(cli, 'adapt_to_machine', lambda cfg: None)  # keeps AMP on a CPU
    cli.train_main([str(config), '--work-dir', str(tmp_path / 'plain')])
    cli.train_main([str(config), '--work-dir', str(tmp_path / 'amp'), '--amp', '--auto-scale-lr'])
    plain, amp = built
    assert plain.optim_wrapper.type == 'OptimWrapper' and not plain.auto_scale_lr.enable
    assert amp.optim_wrapper.type == 'AmpOptimWrapper' and amp.optim_wrapper.loss_scale == 'dynamic'
    assert amp.auto_scale_lr.enable is True
    with pytest.raises(ValueError, match="--amp needs optim_wrapper type 'OptimWrapper', got "
                       "'ApexOptimWrapper'"):
        enable_amp(Config(dict(optim_wrapper=dict(type='ApexOptimWrapper'))))


def test_auto_scale_lr_names_a_missing_base_batch_size():
    for cfg in (Config(dict()), Config(dict(auto_scale_lr=None))):
        with pytest.raises(ValueError, match='--auto-scale-lr needs auto_scale_lr'):
            enable_auto_scale_lr(cfg)


def test_adapt_to_machine_without_gpu(monkeypatch):
    monkeypatch.setattr(runtime, 'get_device', lambda: 'cpu')  # also where a GPU is present
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', free_port())
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    cfg = Config(dict(
        launcher='pytorch',
        model=dict(type='X', head=[dict(norm_cfg=dict(type='SyncBN', requires_grad=True))]),
        optim_wrapper=dict(type='AmpOptimWrapper', loss_scale='dynamic',
                           optimizer=dict(type='AdamW', lr=1e-4))))
    try:
        adapt_to_machine(cfg)
        assert dist.is_initialized() and dist.get_backend() == 'gloo'
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    assert cfg.optim_wrapper == dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4))
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', device_ids=None,
                                         broadcast_buffers=False, find_unused_parameters=False)
    assert cfg.model.head[0].norm_cfg.type == 'BN'
