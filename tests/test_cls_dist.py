"""ImageNet-style training with several processes: tools/dist_train.sh (gloo on a CPU-only
machine) with repeated augmentation spread over the processes, on the shrunk recipe."""
from cls_helpers import TOOLS, run_script, tiny_cls_config, write_config
from coat_backbone.checkpoint import read_checkpoint
from coat_backbone.datasets import SyntheticImageNetArgs, generate_synthetic_imagenet
from tool_runner import free_port


def test_two_processes_share_the_repeated_augmentation(tmp_path):
    data = generate_synthetic_imagenet(tmp_path / 'data', SyntheticImageNetArgs())
    work_dir = tmp_path / 'work'
    config = write_config(tiny_cls_config(data, work_dir, max_epochs=2), tmp_path / 'tiny.py')
    output = run_script([str(TOOLS / 'dist_train.sh'), str(config), '2'],
                        env={'PORT': free_port()})
    assert 'Distributed training: True' in output
    assert 'accuracy/top1' in output  # validation ran on both processes and was gathered
    checkpoint = read_checkpoint(work_dir / 'epoch_2.pth')
    # 320 images x 3 repeats shared by 2 processes, rounded down to 256 draws per epoch as DeiT
    # does: 128 per process, 4 batches of 32 per epoch (one process alone would do 8).
    assert checkpoint['meta']['iter'] == 8
    assert int(checkpoint['ema_state_dict']['steps']) == 8
