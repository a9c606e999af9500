"""Weights from the Hugging Face Hub (`hf-hub:ORG/REPO[@REVISION][/FILE]`), read by the real
`huggingface_hub` client from a stand-in Hub on 127.0.0.1 (tests/hub_helpers.py) that serves
safetensors files made here from timm's models, as timm publishes them."""
import json
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_model

from hub_helpers import REPO, Repository, hub_env, run_python, serve_hub
from tiny_archs import TINY_LITE

TOOLS = REPO / 'tools'


def _timm_weights(name: str, seed: int) -> bytes:
    """A timm CoaT classifier's weights as timm's Hub repositories hold them: model.safetensors,
    each tensor that CoaT shares between modules stored once."""
    torch.manual_seed(seed)
    model = timm.create_model(f'coat_{name}', num_classes=10)
    path = Path(f'/tmp/coat_hub_{os.getpid()}_{name}_{seed}.safetensors')
    save_model(model, str(path))
    data = path.read_bytes()
    path.unlink()
    return data


@pytest.fixture(scope='module')
def weights():
    return {'lite_tiny': _timm_weights('lite_tiny', 0),
            'lite_tiny_v1': _timm_weights('lite_tiny', 1)}


def _repos(weights) -> dict:
    resnet = {'conv1.weight': torch.ones(4, 3, 7, 7), 'fc.weight': torch.ones(10, 4)}
    from safetensors.torch import save
    return {
        'timm/coat_lite_tiny.in1k': Repository({'model.safetensors': weights['lite_tiny']},
                                               v1={'model.safetensors': weights['lite_tiny_v1']}),
        'someone/resnet': Repository({'model.safetensors': save(resnet)}),
    }


# One client process tries several names and reports, per name, the loaded weights' checksum or
# the error; importing coat_backbone (and torch) once keeps the test short.
CLIENT = '''
import json, sys
import torch
from coat_backbone import CheckpointError, CoaT, CoaTClassifier, load_coat_checkpoint
results = {}
for name in sys.argv[1:]:
    try:
        model = CoaTClassifier('lite_tiny', num_classes=10)
        load_coat_checkpoint(model, name)
        results[name] = float(sum(p.double().sum() for p in model.state_dict().values()))
    except CheckpointError as error:
        results[name] = 'error: ' + str(error)
print(json.dumps(results))
'''


def _load(names, env):
    result = run_python(CLIENT, env, *names)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _checksum(data: bytes) -> float:
    from safetensors.torch import load
    model = timm.create_model('coat_lite_tiny', num_classes=10)
    model.load_state_dict(load(data), strict=False)  # the stored-once aliases are shared anyway
    return float(sum(p.double().sum() for p in model.state_dict().values()))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_hub_names_load_revisions_and_work_offline_once_cached(tmp_path, weights):
    home = tmp_path / 'hf'
    name = 'hf-hub:timm/coat_lite_tiny.in1k'
    with serve_hub(_repos(weights)) as hub:
        loaded = _load([name, f'{name}@v1', f'{name}/model.safetensors'], hub_env(home, hub.url))
        gets = [r for r in hub.requests if r.startswith('GET')]
    assert loaded[name] == pytest.approx(_checksum(weights['lite_tiny']), rel=1e-12)
    assert loaded[f'{name}@v1'] == pytest.approx(_checksum(weights['lite_tiny_v1']), rel=1e-12)
    assert loaded[f'{name}/model.safetensors'] == loaded[name]
    assert len(gets) == 2  # main once (the explicit file is the same one), v1 once
    snapshots = list((home / 'hub' / 'models--timm--coat_lite_tiny.in1k' / 'snapshots').iterdir())
    assert len(snapshots) == 2 and all((s / 'model.safetensors').is_file() for s in snapshots)
    # The Hub gone, offline: the cache serves both revisions.
    offline = _load([name, f'{name}@v1'], hub_env(home, f'http://127.0.0.1:{_closed_port()}',
                                                  offline=True))
    assert offline == {name: loaded[name], f'{name}@v1': loaded[f'{name}@v1']}


def test_hub_failures_name_their_cause_and_fix(tmp_path, weights):
    home = tmp_path / 'hf'
    good = 'hf-hub:timm/coat_lite_tiny.in1k'
    with serve_hub(_repos(weights)) as hub:
        env = hub_env(home, hub.url)
        errors = _load(['hf-hub:timm/absent', f'{good}/absent.pth', f'{good}@v9',
                        'hf-hub:someone/resnet', 'hf-hub:not a name'], env)
        cold = _load([good], hub_env(tmp_path / 'cold', hub.url, offline=True))
        hub.failing = True
        # The client retries an unreachable Hub for about 20 s: both cases at once.
        with ThreadPoolExecutor(2) as pool:
            mirror, down = pool.map(lambda endpoint: _load([good], hub_env(home, endpoint)),
                                    (hub.url, f'http://127.0.0.1:{_closed_port()}'))
    assert 'no repository timm/absent on http://127.0.0.1' in errors['hf-hub:timm/absent']
    assert 'HF_TOKEN' in errors['hf-hub:timm/absent']
    assert 'the repository timm/coat_lite_tiny.in1k has no absent.pth' in errors[
        f'{good}/absent.pth']
    assert "has no revision 'v9'; give an existing branch, tag or commit" in errors[f'{good}@v9']
    assert 'model keys missing' in errors['hf-hub:someone/resnet']
    assert 'keys the model does not have: conv1.weight, fc.weight' in errors[
        'hf-hub:someone/resnet']
    assert 'is not a Hub name: write hf-hub:ORG/REPO' in errors['hf-hub:not a name']
    for message in (cold[good],):
        assert 'HF_HUB_OFFLINE=1 forbids downloading' in message
        assert f'python tools/download_weights.py {good}' in message
    for message in (mirror[good], down[good]):
        assert 'cannot reach the Hugging Face Hub at http://127.0.0.1' in message
        assert 'HF_ENDPOINT' in message and 'tools/download_weights.py' in message


def test_tools_take_hub_names_and_convert_to_safetensors(tmp_path, weights):
    home = tmp_path / 'hf'
    name = 'hf-hub:timm/coat_lite_tiny.in1k'
    out = tmp_path / 'lite_tiny_backbone.safetensors'
    with serve_hub(_repos(weights)) as hub:
        env = hub_env(home, hub.url)
        convert = subprocess.run(
            [sys.executable, str(TOOLS / 'convert_checkpoint.py'), name, str(out)], env=env,
            capture_output=True, text=True, cwd=tmp_path)
        assert convert.returncode == 0, convert.stderr
        export = subprocess.run(
            [sys.executable, str(TOOLS / 'export_onnx.py'), str(tmp_path / 'm.onnx'),
             '--checkpoint', name, '--exporter', 'torchscript', '--shape', '64'], env=env,
            capture_output=True, text=True, cwd=tmp_path)
        assert export.returncode == 0, export.stderr
        # An image folder of the head's 10 classes, one picture each, and the attention maps.
        from PIL import Image
        for label in range(10):
            (tmp_path / 'val' / f'class{label}').mkdir(parents=True)
            Image.new('RGB', (72, 64), (25 * label, 90, 160)).save(
                tmp_path / 'val' / f'class{label}' / 'a.png')
        evaluate = subprocess.run(
            [sys.executable, str(TOOLS / 'eval_cls.py'), name, str(tmp_path / 'val'),
             '--img-size', '64', '--num-workers', '0'], env=env, capture_output=True, text=True,
            cwd=tmp_path)
        assert evaluate.returncode == 0 and '(10 images)' in evaluate.stdout, evaluate.stderr
        attention = subprocess.run(
            [sys.executable, str(TOOLS / 'visualize_attention.py'),
             str(tmp_path / 'val' / 'class1' / 'a.png'), str(tmp_path / 'maps'), '--checkpoint',
             name, '--max-size', '64'], env=env, capture_output=True, text=True, cwd=tmp_path)
        assert attention.returncode == 0, attention.stderr
        assert (tmp_path / 'maps' / 'features.png').is_file()
    # The converted file: the backbone's weights, each shared tensor once, loaded strictly.
    from safetensors import safe_open
    with safe_open(str(out), 'pt') as file:
        assert file.metadata()['coat_arch'] == 'lite_tiny'
        stored = set(file.keys())
    from coat_backbone import CoaT, load_coat_checkpoint
    model = CoaT('lite_tiny')
    assert stored < set(model.state_dict())  # the aliases are left out
    load_coat_checkpoint(model, out)
    reference = CoaT('lite_tiny')
    from safetensors.torch import load
    load_coat_checkpoint(reference, _saved(tmp_path, load(weights['lite_tiny'])))
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def _saved(tmp_path, state_dict) -> Path:
    path = tmp_path / 'reference.pth'
    torch.save(state_dict, path)
    return path


DETECTOR_CLIENT = '''
import sys
import torch
from mmengine.runner import load_checkpoint
import coat_backbone  # registers hf-hub: with mmengine's CheckpointLoader
from coat_backbone import CoaT
model = torch.nn.Module()
model.backbone = CoaT(%r)
load_checkpoint(model, sys.argv[1], strict=True)
print(float(sum(p.double().sum() for p in model.state_dict().values())))
''' % (TINY_LITE,)


def test_load_from_a_hub_name_reads_a_whole_model(tmp_path):
    """A config's load_from (mmengine's CheckpointLoader) takes Hub names: a detector's file."""
    from coat_backbone import CoaT
    torch.manual_seed(0)
    state_dict = {f'backbone.{k}': v for k, v in CoaT(TINY_LITE).state_dict().items()}
    path = tmp_path / 'epoch_12.pth'
    torch.save({'meta': {'epoch': 12}, 'state_dict': state_dict}, path)
    repos = {'someone/mask-rcnn-coat': Repository({'epoch_12.pth': path.read_bytes()})}
    with serve_hub(repos) as hub:
        result = run_python(DETECTOR_CLIENT, hub_env(tmp_path / 'hf', hub.url),
                            'hf-hub:someone/mask-rcnn-coat/epoch_12.pth')
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split()[-1]) == pytest.approx(
        float(sum(v.double().sum() for v in state_dict.values())), rel=1e-12)


RANK_CLIENT = '''
import os, sys
import torch.distributed as dist
dist.init_process_group('gloo')
from coat_backbone.checkpoint import read_checkpoint
read_checkpoint(sys.argv[1])
dist.barrier()
'''


def test_distributed_ranks_download_once(tmp_path, weights):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    with serve_hub(_repos(weights)) as hub:
        env = hub_env(tmp_path / 'hf', hub.url)
        processes = [subprocess.Popen(
            [sys.executable, '-c', RANK_CLIENT, 'hf-hub:timm/coat_lite_tiny.in1k'], cwd=REPO,
            env={**env, 'RANK': str(rank), 'LOCAL_RANK': str(rank), 'WORLD_SIZE': '2',
                 'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(port)},
            stderr=subprocess.PIPE, text=True) for rank in range(2)]
        for process in processes:
            assert process.wait(timeout=300) == 0, process.stderr.read()
        gets = [r for r in hub.requests if r.startswith('GET')]
    assert gets == ['GET /timm/coat_lite_tiny.in1k/resolve/main/model.safetensors']


def _train_config(tmp_path, checkpoint: str) -> Path:
    config = tmp_path / 'hub_config.py'
    config.write_text(
        f"_base_ = '{REPO}/configs/mask_rcnn_coat_lite_tiny_fpn_1x.py'\n"
        f"model = dict(backbone=dict(init_cfg=dict(type='Pretrained', "
        f"checkpoint={checkpoint!r})))\n")
    return config


def test_a_training_run_names_hub_failures_before_building_datasets(tmp_path, weights):
    """tools/train.py fetches the config's Hub weights first: a bad name, or offline with a cold
    cache, ends the command at once, with the fix (there is no COCO under the run's folder)."""
    with serve_hub(_repos(weights)) as hub:
        env = hub_env(tmp_path / 'hf', hub.url)
        for checkpoint, message in (
                ('hf-hub:timm/coat_lite_tinyy.in1k', 'no repository timm/coat_lite_tinyy.in1k'),):
            result = subprocess.run(
                [sys.executable, str(TOOLS / 'train.py'), str(_train_config(tmp_path, checkpoint)),
                 '--work-dir', str(tmp_path / 'work')], env=env, capture_output=True, text=True,
                cwd=tmp_path)
            assert result.returncode == 2, result.stderr
            assert message in result.stderr and 'Traceback' not in result.stderr
        offline = {**env, 'HF_HUB_OFFLINE': '1'}
        config = _train_config(tmp_path, 'hf-hub:timm/coat_lite_tiny.in1k')
        result = subprocess.run(
            [sys.executable, str(TOOLS / 'train.py'), str(config), '--work-dir',
             str(tmp_path / 'work')], env=offline, capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 2 and 'HF_HUB_OFFLINE=1 forbids downloading' in result.stderr
        # The pre-download the message names, then the same offline run gets past the weights.
        download = subprocess.run([sys.executable, str(TOOLS / 'download_weights.py'),
                                   str(config)], env=env, capture_output=True, text=True)
        assert download.returncode == 0, download.stderr
        assert 'hf-hub:timm/coat_lite_tiny.in1k: ' in download.stdout
    result = subprocess.run(
        [sys.executable, str(TOOLS / 'train.py'), str(config), '--work-dir',
         str(tmp_path / 'work')], env=offline, capture_output=True, text=True, cwd=tmp_path)
    assert 'HF_HUB_OFFLINE' not in result.stderr
    # It went on to the datasets, which do not exist here.
    assert 'data/coco/annotations/instances_train2017.json' in result.stderr
