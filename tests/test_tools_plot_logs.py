"""tools/plot_logs.py on the logs of real mmengine runs (a tiny epoch-based Runner run) and of an
iteration-based (mmseg-style) run."""
import json

import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.model import BaseModel
from mmengine.runner import Runner
from PIL import Image

from coat_backbone.toolkit.training_logs import read_run_log
from tool_runner import load_tool

plot_logs = load_tool('plot_logs')


class _Regressor(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, targets, mode='tensor'):
        outputs = self.linear(inputs)  # default_collate: batched tensors
        if mode == 'loss':
            return dict(loss=((outputs - targets) ** 2).mean())
        return list(zip(outputs, targets))


class _Metric(BaseMetric):
    default_prefix = 'toy'

    def process(self, data_batch, data_samples) -> None:
        self.results += [float((o - t).abs().mean()) for o, t in data_samples]

    def compute_metrics(self, results) -> dict:
        return {'mAP': 1.0 / (1.0 + sum(results) / len(results))}


def _train(work_dir, visualizer_name: str, **runner_args) -> None:
    """3 epochs of a toy mmengine run validating every epoch, logging every 2 iterations."""
    data = [dict(inputs=torch.randn(2), targets=torch.randn(1)) for _ in range(8)]
    loader = dict(dataset=data, batch_size=2, sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='default_collate'))
    runner = Runner(
        model=_Regressor(), work_dir=str(work_dir), train_dataloader=loader,
        val_dataloader=loader, val_evaluator=Evaluator(_Metric()),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        param_scheduler=dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=6),
        train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=1), val_cfg=dict(),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=2),
                           checkpoint=dict(type='CheckpointHook', interval=1)),
        # Its own name: by default the visualizer is named after the start second, and a
        # Runner built in the same second by an earlier test would lend it its work_dir.
        visualizer=dict(type='Visualizer', name=visualizer_name,
                        vis_backends=[dict(type='LocalVisBackend')]),
        default_scope=None, log_level='WARNING', **runner_args)
    runner.train()


@pytest.fixture(scope='module')
def epoch_run(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('work_dirs') / 'toy_epochs'
    _train(work_dir, 'plot_logs_epoch_run')
    return work_dir


@pytest.fixture
def iter_run(tmp_path):
    """An iteration-based run as mmseg logs it: metrics at iterations, no epochs."""
    vis_data = tmp_path / 'seg_iters' / '20250101_120000' / 'vis_data'
    vis_data.mkdir(parents=True)
    lines = [dict(lr=1e-4 * i, loss=2.0 / i, iter=50 * i, step=50 * i, time=0.3)
             for i in range(1, 5)] + [dict(aAcc=80.0, mIoU=40.5, mAcc=50.0, step=200)]
    (vis_data / 'scalars.json').write_text('\n'.join(json.dumps(line) for line in lines) + '\n')
    return tmp_path / 'seg_iters'


def test_reads_a_real_run(epoch_run):
    log = read_run_log(epoch_run)  # the work_dir: its timestamp folder is found
    assert log.name == 'toy_epochs' and log.last_epoch == 3 and log.val_unit == 'epoch'
    assert {'loss', 'lr', 'toy/mAP'} <= set(log.keys())
    (epochs, values), unit = log.curve('toy/mAP')
    assert epochs == [1, 2, 3] and unit == 'epoch' and all(0 < v <= 1 for v in values)
    (iterations, _), unit = log.curve('loss')
    assert iterations == sorted(iterations) and iterations[-1] == 12 and unit == 'iteration'
    # Validation logs its own time and data_time: kept apart from the training ones.
    assert 'time' in log.train and 'time' not in log.val
    assert log.curve('val/data_time')[0][0] == [1, 2, 3]


def test_a_resumed_run_is_joined_to_what_came_before(epoch_run, tmp_path):
    import shutil
    import time

    work_dir = tmp_path / 'resumed'
    shutil.copytree(epoch_run, work_dir)
    time.sleep(1)  # a new timestamp folder for the resumed run
    # As after a kill in epoch 3: the earlier run logged iterations 10 and 12, and so does this.
    _train(work_dir, 'plot_logs_resumed_run', resume=True,
           load_from=str(work_dir / 'epoch_2.pth'))
    first, resumed = sorted(work_dir.glob('*/vis_data/scalars.json'))
    log = read_run_log(work_dir)
    (iterations, losses), _ = log.curve('loss')
    assert iterations == [2, 4, 6, 8, 10, 12]
    assert losses[4:] == [json.loads(line)['loss'] for line in resumed.read_text().splitlines()
                          if 'iter' in json.loads(line)]
    assert log.curve('toy/mAP')[0][0] == [1, 2, 3] and log.path == work_dir
    assert read_run_log(resumed.parent.parent).curve('loss')[0][0] == [10, 12]
    # A validation of its own (runner.val()) logs step 0: not part of the training history.
    val_only = work_dir / '20990101_000000' / 'vis_data'
    val_only.mkdir(parents=True)
    (val_only / 'scalars.json').write_text('{"toy/mAP": 0.5, "step": 0}\n')
    assert read_run_log(work_dir).curve('toy/mAP')[0][0] == [1, 2, 3]
    assert read_run_log(val_only).curve('toy/mAP')[0] == ([0], [0.5])
    # A new run over the work dir (--force) starts at iteration 1: it replaces the earlier ones.
    fresh = tmp_path / 'fresh' / '20990101_000000' / 'vis_data'
    fresh.mkdir(parents=True)
    (fresh / 'scalars.json').write_text('{"loss": 0.5, "lr": 0.1, "epoch": 1, "iter": 2}\n')
    shutil.copytree(first.parent.parent, tmp_path / 'fresh' / first.parent.parent.name)
    assert read_run_log(tmp_path / 'fresh').curve('loss')[0] == ([2], [0.5])


def test_metrics_logged_by_iteration_in_an_epoch_based_run(tmp_path):
    """LoggerHook(log_metric_by_epoch=False): validation steps are iterations."""
    scalars = tmp_path / 'scalars.json'
    scalars.write_text('{"loss": 1.0, "lr": 0.1, "epoch": 1, "iter": 50, "step": 50}\n'
                       '{"coco/bbox_mAP": 0.3, "step": 50}\n')
    log = read_run_log(scalars)
    assert log.last_epoch == 1 and log.val_unit == 'iteration'
    assert log.curve('coco/bbox_mAP') == (([50], [0.3]), 'iteration')


def test_plots_default_keys_of_several_runs(epoch_run, iter_run, tmp_path, capsys):
    out = tmp_path / 'curves.png'
    assert plot_logs.main([str(epoch_run), str(iter_run), '--legend', 'det', 'seg',
                           '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'loss, lr, mIoU, toy/mAP' in printed and "seg has no ['toy/mAP']" in printed
    with Image.open(out) as png:
        assert png.format == 'PNG' and png.width > 800 and png.height > 600  # 2 x 2 panels
    picture = out.read_bytes()
    assert plot_logs.main([str(epoch_run), '--out', str(out)]) == 2
    assert 'exists already' in capsys.readouterr().err and out.read_bytes() == picture
    assert plot_logs.main([str(epoch_run), '--out', str(out), '--force']) == 0
    assert out.read_bytes() != picture
    assert plot_logs.main([str(epoch_run), '--out', str(out / 'curves.png')]) == 2
    assert f'--out {out / "curves.png"}: {out} is a file, not a folder' in capsys.readouterr().err
    # matplotlib takes the format from the extension: a name without one is refused, not
    # written as another (possibly existing) file.
    (tmp_path / 'report.png').write_bytes(b'mine')
    for out, message in ((tmp_path / 'report', 'end the name with the picture format'),
                         (tmp_path / 'curves.txt', 'end the name with the picture format'),
                         (tmp_path, 'is a directory')):
        with pytest.raises(SystemExit):
            plot_logs.main([str(epoch_run), '--out', str(out), '--force'])
        assert message in capsys.readouterr().err
    assert (tmp_path / 'report.png').read_bytes() == b'mine'


def test_missing_keys_name_the_available_ones(epoch_run, iter_run, tmp_path, capsys):
    assert plot_logs.main([str(iter_run), '--keys', 'coco/bbox_mAP', '--out',
                           str(tmp_path / 'x.png')]) == 2
    error = capsys.readouterr().err
    assert "No run has the keys ['coco/bbox_mAP']" in error and 'mIoU' in error and 'loss' in error
    assert plot_logs.main([str(epoch_run), str(iter_run), '--keys', 'toy/mAP', 'loss_typo',
                           '--out', str(tmp_path / 'x.png')]) == 2
    assert "No run has the keys ['loss_typo']" in capsys.readouterr().err
    assert plot_logs.main([str(epoch_run), str(iter_run), '--keys', 'toy/mAP', '--out',
                           str(tmp_path / 'x.png')]) == 2
    error = capsys.readouterr().err
    assert 'has none of the keys' in error and 'mIoU' in error
    assert not (tmp_path / 'x.png').exists()
    assert plot_logs.main([str(epoch_run / 'nothing_here')]) == 2
    assert 'No mmengine scalar log' in capsys.readouterr().err
    assert plot_logs.main([str(iter_run), '--list']) == 0
    assert 'aAcc, loss, lr, mAcc, mIoU, time' in capsys.readouterr().out
    for argv, code in ((['--help'], 0), ([str(iter_run), '--legend', 'a', 'b'], 2)):
        with pytest.raises(SystemExit) as exit_info:
            plot_logs.main(argv)
        assert exit_info.value.code == code
    bad = tmp_path / 'bad.json'
    bad.write_text('{"loss": 1, "iter": 1}\nnot json\n')
    assert plot_logs.main([str(bad)]) == 2
    assert 'line 2, is not JSON' in capsys.readouterr().err
