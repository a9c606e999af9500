"""The shell launchers in tools/: what they pass on, which interpreter they run, and the mistakes
they name. srun is a stand-in that records its arguments; nothing is trained or installed."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / 'tools'


@pytest.fixture
def srun(tmp_path: Path) -> dict:
    """An environment whose `srun` writes its arguments, one a line, to `srun.log`."""
    fake = tmp_path / 'bin' / 'srun'
    fake.parent.mkdir()
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$SRUN_LOG"\n')
    fake.chmod(0o755)
    # What the launchers read, perhaps set on a cluster's login node, is the tests' to give.
    env = {key: value for key, value in os.environ.items()
           if key not in ('COAT_VENV', 'GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS')}
    return {**env, 'PATH': f'{fake.parent}:{os.environ["PATH"]}',
            'SRUN_LOG': str(tmp_path / 'srun.log')}


def srun_args(env: dict) -> list:
    return Path(env['SRUN_LOG']).read_text().split('\n')[:-1]


def launch(script: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', str(TOOLS / script), *args], capture_output=True, text=True,
                          **kwargs)


def test_missing_arguments_print_the_usage():
    for script in ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh', 'slurm_test.sh'):
        result = launch(script)
        assert result.returncode == 2 and 'usage' in result.stderr


def test_an_option_in_place_of_an_argument_is_named(srun):
    """mmseg's slurm_train.sh has no WORK_DIR: `--amp` must not become the work dir."""
    for script, args, named in (
            ('dist_train.sh', ['cfg.py', '--amp'], "NUM_PROCESSES '--amp' is not a number"),
            ('dist_test.sh', ['cfg.py', 'ckpt.pth', 'eight'],
             "NUM_PROCESSES 'eight' is not a number"),
            ('slurm_train.sh', ['part', 'job', 'cfg.py', '--amp'],
             "WORK_DIR '--amp' is an option"),
            ('slurm_test.sh', ['part', 'job', 'cfg.py', '--out', 'r.pkl'],
             "CHECKPOINT '--out' is an option")):
        result = launch(script, *args, env=srun)
        assert result.returncode == 2, script
        assert named in result.stderr and 'usage' in result.stderr, result.stderr
    assert not Path(srun['SRUN_LOG']).exists()


def test_slurm_train_runs_srun_with_the_mmdet_conventions(srun, tmp_path):
    env = {**srun, 'COAT_VENV': sys.prefix, 'GPUS': '16', 'SRUN_ARGS': '--quotatype=auto -x n1'}
    launch('slurm_train.sh', 'part', 'job', 'my cfg.py', 'work dir', '--amp', env=env, check=True)
    args = srun_args(env)
    assert args[:7] == ['-p', 'part', '--job-name=job', '--gres=gpu:8', '--ntasks=16',
                        '--ntasks-per-node=8', '--cpus-per-task=5']
    assert args[8:11] == ['--quotatype=auto', '-x', 'n1']
    assert args[11:] == [str(Path(sys.prefix) / 'bin' / 'python'), '-u', str(TOOLS / 'train.py'),
                         'my cfg.py', '--work-dir=work dir', '--launcher=slurm', '--amp']
    # Through a symlink, as from a folder on PATH.
    (tmp_path / 'slurm_train.sh').symlink_to(TOOLS / 'slurm_train.sh')
    subprocess.run([str(tmp_path / 'slurm_train.sh'), 'part', 'job', 'my cfg.py', 'work dir',
                    '--amp'], env=env, check=True)
    assert srun_args(env)[11:] == args[11:]
    # Fewer GPUS than a node's 8 ask for that many.
    launch('slurm_test.sh', 'part', 'job', 'cfg.py', 'ckpt.pth', '--out', 'r.pkl',
           env={**env, 'GPUS': '4'}, check=True)
    args = srun_args(env)
    assert args[3:6] == ['--gres=gpu:4', '--ntasks=4', '--ntasks-per-node=4']
    assert args[-6:] == [str(TOOLS / 'test.py'), 'cfg.py', 'ckpt.pth', '--launcher=slurm',
                         '--out', 'r.pkl']


def test_the_interpreter_is_the_named_environment_taken_from_the_current_folder(srun, tmp_path):
    env_bin = tmp_path / 'env' / 'bin'
    env_bin.mkdir(parents=True)
    (env_bin / 'python').symlink_to(sys.executable)
    # A relative COAT_VENV means the same folder to every launcher: the current one's.
    env = {**srun, 'COAT_VENV': 'env'}
    launch('slurm_train.sh', 'part', 'job', 'cfg.py', 'wd', env=env, cwd=tmp_path, check=True)
    assert srun_args(env)[-6] == str(env_bin / 'python')
    # A named environment without python is an error, not a fall-back to another interpreter.
    result = launch('slurm_train.sh', 'part', 'job', 'cfg.py', 'wd',
                    env={**srun, 'COAT_VENV': str(tmp_path / 'missing')})
    assert result.returncode != 0
    assert f'COAT_VENV={tmp_path / "missing"} has no bin/python' in result.stderr
    assert 'tools/setup_env.sh' in result.stderr


def test_without_an_environment_python3_from_path_runs(srun, tmp_path):
    """A copy of the launchers without .venv: the user's own environment."""
    (tmp_path / 'checkout' / 'tools').mkdir(parents=True)
    for script in ('slurm_train.sh', 'launcher.sh'):
        (tmp_path / 'checkout' / 'tools' / script).write_text((TOOLS / script).read_text())
    subprocess.run(['bash', str(tmp_path / 'checkout' / 'tools' / 'slurm_train.sh'), 'part',
                    'job', 'cfg.py', 'wd'], env=srun, check=True)
    assert srun_args(srun)[-6] == 'python3'


def test_the_demo_reads_the_paths_it_is_given_from_the_current_folder(tmp_path):
    """tools/run_demo.sh run from elsewhere: a config and a work dir relative to that folder. The
    launcher runs from a stand-in checkout whose set-up does nothing, beside the real demo."""
    tools = tmp_path / 'checkout' / 'tools'
    tools.mkdir(parents=True)
    for script in ('run_demo.sh', 'launcher.sh'):
        (tools / script).write_text((TOOLS / script).read_text())
    (tools / 'setup_env.sh').write_text('exit 0\n')
    (tools / 'demo_synthetic.py').symlink_to(TOOLS / 'demo_synthetic.py')
    user = tmp_path / 'user'
    user.mkdir()
    (user / 'my_demo.py').write_text((REPO / 'configs/demo/mask_rcnn_coat_demo.py').read_text())
    (user / 'afile').write_text('a file of the user')
    result = subprocess.run(['bash', str(tools / 'run_demo.sh'), '--config', 'my_demo.py',
                             '--work-dir', 'afile/run'], capture_output=True, text=True,
                            env={**os.environ, 'COAT_VENV': sys.prefix}, cwd=user, timeout=600)
    # It read the config and refused the work dir under the user's file, before any work.
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert '--work-dir afile/run' in result.stderr and 'not found' not in result.stderr
    assert (user / 'afile').read_text() == 'a file of the user'
    assert not (REPO / 'afile').exists() and not (user / 'data').exists()
