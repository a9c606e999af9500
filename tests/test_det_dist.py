"""Multi-process training with tools/dist_train.sh (gloo on CPU) and resuming a killed run with
tools/train.py --resume, on real configs shrunk to CPU size (see det_helpers)."""
import os
import signal
import subprocess
import sys
import time

from coat_backbone.checkpoint import read_checkpoint
from det_helpers import CONFIG_DIR, REPO, TOOLS, run_tool, tiny_config_file
from tool_runner import free_port


def test_dist_train_with_two_processes(coco_shapes, tmp_path):
    work_dir = tmp_path / 'work'
    config = tiny_config_file(CONFIG_DIR / 'mask_rcnn_coat_lite_mini_fpn_1x.py', coco_shapes,
                              work_dir, tmp_path / 'tiny.py')
    # With gradient checkpointing: DDP (find_unused_parameters=False) must cope with the
    # modules the parallel blocks share across scales being recomputed in the backward.
    result = run_tool([str(TOOLS / 'dist_train.sh'), str(config), '2', '--cfg-options',
                       'model.backbone.with_cp=True'], env={'PORT': free_port()})
    assert 'Distributed training: True' in result.stdout + result.stderr
    assert 'with_cp=True' in (work_dir / 'tiny.py').read_text()  # the config the run used
    checkpoint = read_checkpoint(work_dir / 'epoch_1.pth')
    # 8 images, 2 processes x 2 images: 2 iterations per epoch.
    assert checkpoint['meta']['epoch'] == 1 and checkpoint['meta']['iter'] == 2


def test_killed_run_resumes_where_its_last_checkpoint_left_off(coco_shapes, tmp_path):
    work_dir = tmp_path / 'work'
    config = tiny_config_file(CONFIG_DIR / 'mask_rcnn_coat_lite_small_fpn_1x.py', coco_shapes,
                              work_dir, tmp_path / 'tiny.py', max_epochs=2)
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    with open(tmp_path / 'killed.log', 'w') as log:
        run = subprocess.Popen([sys.executable, str(TOOLS / 'train.py'), str(config)], cwd=REPO,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        pointer = work_dir / 'last_checkpoint'
        while not pointer.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)  # in epoch 2, right after epoch 1's checkpoint
        run.wait()
    assert run.returncode == -signal.SIGKILL, (tmp_path / 'killed.log').read_text()[-3000:]
    assert pointer.read_text() == str(work_dir / 'epoch_1.pth')

    result = run_tool([str(TOOLS / 'train.py'), str(config), '--resume'])
    assert 'resumed epoch: 1, iter: 4' in result.stdout + result.stderr
    final = read_checkpoint(work_dir / 'epoch_2.pth')
    assert (final['meta']['epoch'], final['meta']['iter']) == (2, 8)
    # AdamW took all 8 steps: its moments survived the kill (4 of the steps came after it).
    steps = {int(state['step']) for state in final['optimizer']['state'].values()}
    assert max(steps) == 8
    assert final['optimizer']['state'][0]['step'] == 8


def test_a_finished_run_destroys_its_process_group(tmp_path):
    # Left to interpreter exit, gloo's threads can abort a rank whose work is done (SIGABRT).
    import torch.distributed as dist

    from coat_backbone.engine.runtime import end_process_group

    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
                            world_size=1)
    end_process_group()
    assert not dist.is_initialized()
    end_process_group()  # without a group: nothing to do
