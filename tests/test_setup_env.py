"""tools/setup_env.sh's recovery paths, run against a stand-in venv.

The stand-in's ``python`` and ``uv`` log their calls and fail where a test says; ``pip``,
``ensurepip`` and the final import check are simulated, and every other call (the probe for the
mmcv cache key and build tools) runs on the real interpreter. Nothing is installed, so each case
takes seconds.
"""
import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'tools' / 'setup_env.sh'

FAKE_PYTHON = '''#!/usr/bin/env bash
echo "python $*" >> "$FAKE_LOG"
case "$1 $2 $3" in
  "-m pip --version") exec test -e "$FAKE_DIR/has_pip" ;;
  "-m ensurepip -q")
    [ -n "${FAKE_ENSUREPIP_OK:-}" ] && touch "$FAKE_DIR/has_pip"
    exec test -e "$FAKE_DIR/has_pip" ;;
  "-m pip install") exit 0 ;;
  "-c import mmcv.ops,"*) exit 0 ;;  # the stack check: nothing is installed
  "-m pip wheel")
    [ -n "${FAKE_BUILD_OK:-}" ] || exit 1
    while [ "$1" != -w ]; do shift; done
    exec touch "$2/mmcv-0.0.0-py3-none-any.whl" ;;
esac
exec REAL_PYTHON "$@"
'''
FAKE_UV = '''#!/usr/bin/env bash
echo "uv $*" >> "$FAKE_LOG"
exit "${FAKE_UV_RC:-0}"
'''


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    bin_dir = tmp_path / 'venv' / 'bin'
    bin_dir.mkdir(parents=True)
    for name, text in (('python', FAKE_PYTHON.replace('REAL_PYTHON', sys.executable)),
                       ('uv', FAKE_UV)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return tmp_path / 'venv'


def launch(venv: Path, **env: str) -> subprocess.Popen:
    """Start the script; its stderr goes to `stderr.log` next to the venv."""
    full_env = {**os.environ, 'COAT_VENV': str(venv), 'COAT_CACHE_DIR': str(venv.parent / 'cache'),
                'COAT_STACK': 'current', 'FAKE_DIR': str(venv), 'FAKE_LOG': str(venv / 'calls.log'),
                **env}
    with open(venv.parent / 'stderr.log', 'w') as stderr:
        return subprocess.Popen(['bash', str(SCRIPT)], env=full_env, stdout=subprocess.DEVNULL,
                                stderr=stderr)


def run(venv: Path, **env: str) -> tuple[int, str, list[str]]:
    returncode = launch(venv, **env).wait(timeout=120)
    log = venv / 'calls.log'
    calls = log.read_text().splitlines() if log.exists() else []
    return returncode, (venv.parent / 'stderr.log').read_text(), calls


def test_a_failed_update_leaves_no_stamp(venv: Path):
    (venv / 'has_pip').touch()
    stamp = venv / '.coat-setup-done'
    stamp.write_text('key of an earlier set-up\n')
    returncode, _, calls = run(venv, FAKE_UV_RC='1')
    assert returncode != 0 and any(call.startswith('uv pip install') for call in calls)
    # A stamp left behind would let a later run with the earlier key skip a half-updated venv.
    assert not stamp.exists()


def test_a_venv_without_pip_is_repaired(venv: Path):
    returncode, stderr, calls = run(venv, FAKE_ENSUREPIP_OK='1', FAKE_UV_RC='1')
    assert returncode != 0  # stopped at the first uv call, after the repair
    assert 'has no pip; installing it with ensurepip' in stderr
    assert calls.index('python -m ensurepip -q') < next(
        i for i, call in enumerate(calls) if call.startswith('python -m pip install'))


def test_a_venv_without_pip_or_ensurepip_names_the_package(venv: Path):
    returncode, stderr, calls = run(venv)
    assert returncode == 1
    assert 'python%d.%d-venv' % sys.version_info[:2] in stderr
    assert not any(call.startswith('python -m pip install') for call in calls)


def test_missing_build_tools_are_named_before_building(venv: Path):
    (venv / 'has_pip').touch()
    returncode, stderr, calls = run(venv, CXX=str(venv / 'no-such-compiler'))
    assert returncode == 1
    assert ('building mmcv needs a C++ compiler (Debian/Ubuntu: apt install build-essential)'
            in stderr)
    assert not any(call.startswith('python -m pip wheel') for call in calls)
    assert not list((venv.parent / 'cache' / 'mmcv-wheels').glob('*'))


def test_a_compiler_command_line_counts_as_a_compiler(venv: Path):
    (venv / 'has_pip').touch()
    returncode, stderr, calls = run(venv, CXX=f'env {shutil.which("c++") or "g++"}')
    assert returncode == 1 and 'building mmcv needs' not in stderr
    # The check let the build start (the stand-in's build then fails).
    assert any(call.startswith('python -m pip wheel') for call in calls)


def test_cuda_ops_without_nvcc_offer_a_cpu_only_set_up(venv: Path):
    (venv / 'has_pip').touch()
    returncode, stderr, _ = run(venv, FORCE_CUDA='1', CUDA_HOME=str(venv / 'no-cuda-toolkit'))
    assert returncode == 1
    assert "nvcc for mmcv's CUDA ops" in stderr and 'CUDA_VISIBLE_DEVICES=' in stderr


@pytest.mark.skipif(shutil.which('flock') is None, reason='no flock command (util-linux)')
def test_a_second_set_up_waits_for_the_first(venv: Path):
    (venv / 'has_pip').touch()
    lock_path = venv.parent / 'cache' / 'setup.lock'
    lock_path.parent.mkdir()
    with open(lock_path, 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a set-up in progress
        process = launch(venv, FAKE_UV_RC='1')
        deadline = time.monotonic() + 60
        while 'waiting for another set-up' not in (venv.parent / 'stderr.log').read_text():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)
        assert process.poll() is None and not (venv / 'calls.log').exists()
    process.wait(timeout=120)
    assert (venv / 'calls.log').exists()  # it went on once the lock was free


def test_an_unwritable_cache_is_named_with_the_fix(venv: Path):
    (venv.parent / 'cache').write_text('a file where the cache folder should be')
    returncode, stderr, calls = run(venv)
    assert returncode == 1 and not calls
    assert 'cannot write to' in stderr and 'set COAT_CACHE_DIR to a writable folder' in stderr


def test_a_cache_folder_whose_wheel_was_deleted_gets_the_rebuilt_wheel(venv: Path):
    (venv / 'has_pip').touch()
    assert run(venv, FAKE_BUILD_OK='1')[0] == 0
    [wheel] = (venv.parent / 'cache' / 'mmcv-wheels').glob('*/mmcv-*.whl')
    wheel.unlink()  # the user removes a wheel they distrust; its folder stays
    (venv / '.coat-setup-done').unlink()
    (venv / 'calls.log').unlink()
    returncode, _, calls = run(venv, FAKE_BUILD_OK='1')
    assert returncode == 0 and wheel.exists()  # where the next set-up finds it
    assert any(call.startswith('uv pip install') and str(wheel) in call for call in calls)
    assert calls[-1].startswith('python -c import mmcv.ops, mmdet.models, mmseg.models')


def test_a_python_older_than_the_pins_is_named_before_the_venv(tmp_path: Path):
    old_python = tmp_path / 'python3.10'
    old_python.write_text('#!/usr/bin/env bash\necho 3.10\nexit 1\n')
    old_python.chmod(0o755)
    venv = tmp_path / 'new-venv'
    returncode, stderr, _ = run(venv, COAT_BASE_PYTHON=str(old_python))
    assert returncode == 1 and not venv.exists()
    assert f'{old_python} is Python 3.10' in stderr and '3.11 or newer' in stderr
    assert 'COAT_BASE_PYTHON=' in stderr
    returncode, stderr, _ = run(venv, COAT_BASE_PYTHON=str(tmp_path / 'no-python'))
    assert returncode == 1 and not venv.exists()
    assert f'COAT_BASE_PYTHON={tmp_path / "no-python"}: no such interpreter' in stderr


def test_the_users_stack_installs_its_own_pins_on_python_3_11(venv: Path, tmp_path: Path):
    (venv / 'has_pip').touch()
    returncode, _, calls = run(venv, COAT_STACK='torch2.1', FAKE_BUILD_OK='1')
    installs = [call for call in calls if call.startswith('uv pip install')]
    assert returncode == 0 and installs
    assert all(f'-c {ROOT / "constraints-torch2.1.txt"} ' in call for call in installs)
    # torch 2.1 has no wheels past Python 3.11: a newer one is named before any venv is made.
    new_python = tmp_path / 'python3.12'
    new_python.write_text('#!/usr/bin/env bash\necho 3.12\nexit 1\n')
    new_python.chmod(0o755)
    returncode, stderr, _ = run(tmp_path / 'new-venv', COAT_STACK='torch2.1',
                                COAT_BASE_PYTHON=str(new_python))
    assert returncode == 1 and not (tmp_path / 'new-venv').exists()
    assert f'{new_python} is Python 3.12, and the pinned stack needs 3.11:' in stderr


def test_an_unknown_stack_is_named(venv: Path):
    returncode, stderr, calls = run(venv, COAT_STACK='torch1.13')
    assert returncode == 2 and not calls
    assert 'COAT_STACK=torch1.13 is no stack of this project: use current' in stderr


def test_a_venv_of_an_older_python_is_named(venv: Path):
    (venv / 'has_pip').touch()
    python = venv / 'bin' / 'python'
    python.write_text(python.read_text().replace('case "$1 $2 $3" in',
                                                 'case "$1 $2 $3" in\n  "-c import sys;"*) '
                                                 'echo 3.10; exit 1 ;;'))
    returncode, stderr, calls = run(venv)
    assert returncode == 1 and f'{venv} is Python 3.10' in stderr and 'move it away' in stderr
    assert not any(call.startswith('python -m pip install') for call in calls)


def test_another_gpu_generation_redoes_the_set_up(venv: Path, tmp_path: Path, monkeypatch):
    """mmcv's ops are built for the GPUs present: a venv moved to another generation is updated."""
    (venv / 'has_pip').touch()
    nvidia_smi = tmp_path / 'bin' / 'nvidia-smi'
    nvidia_smi.parent.mkdir()
    nvidia_smi.write_text('#!/usr/bin/env bash\n[ "$1" = -L ] && exec echo "GPU 0: A GPU"\n'
                          '[ -n "$FAKE_COMPUTE_CAP" ] && exec echo "$FAKE_COMPUTE_CAP"\n'
                          'echo "Field compute_cap is not a valid field to query." >&2\n'
                          'exit 2\n')
    nvidia_smi.chmod(0o755)
    env = dict(PATH=f'{nvidia_smi.parent}:{os.environ["PATH"]}', FAKE_BUILD_OK='1')
    # nvidia-smi is asked (it ignores CUDA_VISIBLE_DEVICES), torch sees no GPU, and no CUDA
    # build is asked for, so that no nvcc is needed on a machine with a GPU either.
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '-1')
    for name in ('FORCE_CUDA', 'TORCH_CUDA_ARCH_LIST'):
        monkeypatch.delenv(name, raising=False)
    assert run(venv, FAKE_COMPUTE_CAP='8.0', **env)[0] == 0
    returncode, stderr, _ = run(venv, FAKE_COMPUTE_CAP='8.0', **env)
    assert returncode == 0 and 'environment up to date' in stderr
    returncode, stderr, _ = run(venv, FAKE_COMPUTE_CAP='9.0', **env)
    assert returncode == 0 and 'environment up to date' not in stderr
    # A driver that cannot say (before R510) is no reason to stop.
    returncode, stderr, _ = run(venv, FAKE_COMPUTE_CAP='', **env)
    assert returncode == 0 and 'environment ready' in stderr
