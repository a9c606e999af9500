"""Checkpoint formats CoaT accepts, and the clear errors for the ones it must refuse."""
import argparse
import logging
from collections import OrderedDict, defaultdict, deque
from contextlib import contextmanager
from typing import Iterator, List

import numpy as np
import pytest
import timm
import torch
from safetensors import safe_open
from safetensors.torch import save_file, save_model
from mmengine.logging import HistoryBuffer, MMLogger
from mmengine.registry import MODELS

from coat_backbone import CheckpointError, CoaT, CoaTClassifier, load_coat_checkpoint
from coat_backbone.engine import allow_mmengine_checkpoints
from coat_backbone.engine.serialization import WEIGHTS_ONLY_BY_DEFAULT
from coat_backbone.models.coat import ARCH_SETTINGS, arch_of, arch_settings_of, resolve_arch
from tiny_archs import TINY_COAT, TINY_LITE


def _official_state_dict(arch) -> 'OrderedDict[str, torch.Tensor]':
    """The keys an official classification model saves: the classifier's plus the unused norms."""
    torch.manual_seed(1)
    classifier = CoaTClassifier(arch, num_classes=5)
    state_dict = classifier.state_dict()
    unused = ['norm1'] if classifier.parallel_depth else ['norm1', 'norm2', 'norm3']
    for name in unused:
        dim = classifier.embed_dims[int(name[-1]) - 1]
        state_dict[f'{name}.weight'] = torch.rand(dim)
        state_dict[f'{name}.bias'] = torch.rand(dim)
    return state_dict


def _assert_loaded(model: torch.nn.Module, state_dict: dict) -> None:
    for key, value in model.state_dict().items():
        assert torch.equal(value, state_dict[key]), key


@pytest.fixture(params=['parallel', 'lite'])
def arch(request):
    return TINY_COAT if request.param == 'parallel' else TINY_LITE


def _save(tmp_path, obj, name='ckpt.pth') -> str:
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def test_official_training_file(tmp_path, arch):
    state_dict = _official_state_dict(arch)
    path = _save(tmp_path, {'model': state_dict, 'optimizer': {'state': {}, 'param_groups': []},
                            'lr_scheduler': {'last_epoch': 3}, 'epoch': 299,
                            'args': argparse.Namespace(model='coat', lr=5e-4)})
    backbone = CoaT(arch)
    load_coat_checkpoint(backbone, path)
    _assert_loaded(backbone, state_dict)
    classifier = CoaTClassifier(arch, num_classes=5)
    load_coat_checkpoint(classifier, path)
    _assert_loaded(classifier, state_dict)


@contextmanager
def _logged_messages() -> Iterator[List[str]]:
    """The messages mmengine's current logger receives meanwhile."""
    messages: List[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def test_dense_mode_drops_head_and_says_so(tmp_path, arch):
    path = _save(tmp_path, {'model': _official_state_dict(arch)})
    with _logged_messages() as messages:
        load_coat_checkpoint(CoaT(arch), path)
    assert any('dropped' in m and 'head' in m and 'norm4' in m for m in messages), messages


def test_bare_timm_state_dict(tmp_path, arch):
    state_dict = _official_state_dict(arch)
    state_dict.pop('norm1.weight')
    state_dict.pop('norm1.bias')  # timm filters the unused norms away
    model = CoaT(arch)
    load_coat_checkpoint(model, _save(tmp_path, state_dict))
    _assert_loaded(model, state_dict)


@pytest.mark.parametrize('name', ['lite_tiny', 'tiny'])
def test_a_timm_models_own_state_dict_loads_into_the_backbone(tmp_path, name):
    state_dict = timm.create_model(f'coat_{name}', num_classes=10).state_dict()
    model = CoaT(name)
    load_coat_checkpoint(model, _save(tmp_path, state_dict))
    _assert_loaded(model, state_dict)


def test_detector_file_with_backbone_prefix_via_init_cfg(tmp_path, arch):
    """An mmengine/mmdet file: 'meta' with numpy and log objects, and a whole detector's keys."""
    source = CoaT(arch)
    detector_keys = OrderedDict((f'backbone.{k}', v) for k, v in source.state_dict().items())
    detector_keys['neck.lateral_convs.0.conv.weight'] = torch.rand(4, 16, 1, 1)
    detector_keys['roi_head.bbox_head.fc_cls.weight'] = torch.rand(81, 4)
    path = _save(tmp_path, {'meta': {'epoch': 12, 'seed': np.int64(3), 'hist': np.arange(4.0),
                                     'CLASSES': ('a', 'b')},
                            'state_dict': detector_keys, 'optimizer': {}})
    model = MODELS.build(dict(type='CoaT', arch=arch,
                              init_cfg=dict(type='Pretrained', checkpoint=path)))
    model.init_weights()
    _assert_loaded(model, source.state_dict())


def test_module_prefix_and_mmseg_pretrained_argument(tmp_path, arch):
    source = CoaT(arch)
    path = _save(tmp_path, {'state_dict': OrderedDict(
        (f'module.backbone.{k}', v) for k, v in source.state_dict().items())})
    model = CoaT(arch, pretrained=path)
    model.init_weights()
    _assert_loaded(model, source.state_dict())
    # mmengine's Pretrained loader accepts the prefix without its dot; so does CoaT's.
    model = CoaT(arch, init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone'))
    model.init_weights()
    _assert_loaded(model, source.state_dict())
    with pytest.raises(ValueError, match='both'):
        CoaT(arch, pretrained=path, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match=r"Pretrained'\) has no checkpoint: add checkpoint="):
        CoaT(arch, init_cfg=dict(type='Pretrained')).init_weights()


def test_missing_aliases_of_shared_modules_are_filled(tmp_path):
    source = CoaT(TINY_COAT)
    state_dict = OrderedDict((k, v) for k, v in source.state_dict().items()
                             if not k.startswith(('serial_blocks', 'parallel_blocks'))
                             or '.cpe.' not in k and '.crpe.' not in k and 'mlp3' not in k)
    assert len(state_dict) < len(source.state_dict())
    model = CoaT(TINY_COAT)
    load_coat_checkpoint(model, _save(tmp_path, state_dict))
    _assert_loaded(model, source.state_dict())


def test_differing_copies_of_a_shared_module_are_refused(tmp_path):
    state_dict = {key: value.clone() for key, value in CoaT(TINY_COAT).state_dict().items()}
    state_dict['serial_blocks1.0.cpe.proj.weight'].zero_()
    state_dict['parallel_blocks.0.mlp3.fc1.weight'] += 1
    model = CoaT(TINY_COAT)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r'2 weights that CoaT shares .*differ.*'
                       r'cpe1\.proj\.weight vs serial_blocks1\.0\.cpe\.proj\.weight.*'
                       r'mlp2\.fc1\.weight vs parallel_blocks\.0\.mlp3\.fc1\.weight'):
        load_coat_checkpoint(model, _save(tmp_path, state_dict))
    _assert_loaded(model, before)  # all or nothing
    # NaN in every copy (a diverged run's weights): copies that agree.
    for key in state_dict:
        if key.startswith('parallel_blocks.0.mlp'):  # mlp2, mlp3 and mlp4: one shared module
            state_dict[key].fill_(float('nan'))
    state_dict['serial_blocks1.0.cpe.proj.weight'] = state_dict['cpe1.proj.weight']
    load_coat_checkpoint(model, _save(tmp_path, state_dict))
    assert torch.isnan(model.parallel_blocks[0].mlp4.fc2.weight).all()


def test_a_path_under_home_is_expanded(tmp_path, monkeypatch):
    state_dict = CoaT(TINY_LITE).state_dict()
    _save(tmp_path, state_dict, 'weights.pth')
    monkeypatch.setenv('HOME', str(tmp_path))
    model = CoaT(TINY_LITE)
    load_coat_checkpoint(model, '~/weights.pth')  # as mmengine's loader reads load_from
    _assert_loaded(model, state_dict)


def test_runner_checkpoint_from_real_training(tmp_path):
    """A file written by mmengine's Runner (message hub, numpy buffers) loads weights-only."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Wrapper(BaseModel):
        def __init__(self):
            super().__init__()
            self.backbone = CoaT(TINY_LITE)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            features = self.backbone(inputs)
            return {'loss': sum(f.mean() for f in features)} if mode == 'loss' else features

    data = [dict(inputs=torch.randn(3, 32, 32)) for _ in range(2)]
    runner = Runner(model=Wrapper(), work_dir=str(tmp_path),
                    train_dataloader=dict(dataset=data, batch_size=2, collate_fn=dict(
                        type='default_collate'), sampler=dict(type='DefaultSampler')),
                    train_cfg=dict(by_epoch=True, max_epochs=1),
                    optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
                    default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)))
    runner.train()
    model = CoaT(TINY_LITE)
    load_coat_checkpoint(model, str(tmp_path / 'epoch_1.pth'))
    _assert_loaded(model, runner.model.backbone.state_dict())


@pytest.mark.parametrize('file_arch, model_arch', [
    ('lite_tiny', 'lite_mini'),  # other widths
    ('lite_small', 'lite_mini'),  # the same widths, other depths: only keys differ
    ('small', 'lite_small'),  # deeper than the model once the shared weights are copied
])
def test_another_variant_names_the_right_arch(tmp_path, file_arch, model_arch):
    path = _save(tmp_path, {'model': CoaT(file_arch).state_dict()})
    with pytest.raises(CheckpointError) as error:
        load_coat_checkpoint(CoaT(model_arch), path)
    message = str(error.value)
    assert path in message
    assert message.endswith(f"The checkpoint is CoaT arch='{file_arch}'; build the model with "
                            f"that arch.")
    if file_arch == 'lite_tiny':
        assert 'cls_token4: checkpoint (1, 1, 320) vs model (1, 1, 512)' in message


def test_another_class_count_names_it_and_new_head_fine_tunes(tmp_path):
    source = CoaTClassifier(TINY_LITE, num_classes=1000)
    path = _save(tmp_path, {'model': source.state_dict()})
    with pytest.raises(CheckpointError, match=r"head has 1000 classes and the model 5: build it "
                       r"with num_classes=1000, or .*new_head=True"):
        load_coat_checkpoint(CoaTClassifier(TINY_LITE, num_classes=5), path)
    torch.manual_seed(3)
    model = CoaTClassifier(TINY_LITE, num_classes=5,
                           init_cfg=dict(type='Pretrained', checkpoint=path, new_head=True))
    new_head = model.head.weight.clone()
    with _logged_messages() as messages:
        model.init_weights()
    assert torch.equal(model.head.weight, new_head)
    assert any("the head is the model's own, newly initialised" in m for m in messages)
    _assert_loaded(model, {**source.state_dict(), 'head.weight': new_head,
                           'head.bias': model.head.bias})


def test_other_input_channels_are_named(tmp_path):
    path = _save(tmp_path, CoaT(TINY_LITE).state_dict())
    with pytest.raises(CheckpointError, match=r'takes 3 input channels: build the model with '
                       r'in_channels=3\.$'):
        load_coat_checkpoint(CoaT(TINY_LITE, in_channels=1), path)


def test_a_custom_arch_is_named_whole(tmp_path):
    # Other widths change patch_embed1's shape too: not a matter of input channels.
    path = _save(tmp_path, CoaT(TINY_COAT).state_dict())
    with pytest.raises(CheckpointError) as error:
        load_coat_checkpoint(CoaT(TINY_LITE), path)
    assert str(error.value).endswith(f'The checkpoint is CoaT arch={TINY_COAT!r}; build the model '
                                     f'with that arch.')


def test_pretrained_in_an_init_cfg_list_loads_strictly_and_last(tmp_path):
    source = CoaT(TINY_LITE)
    path = _save(tmp_path, {'model': source.state_dict()})
    model = CoaT(TINY_LITE, init_cfg=[dict(type='Constant', layer='Linear', val=0.5),
                                      dict(type='Pretrained', checkpoint=path)])
    model.init_weights()
    _assert_loaded(model, source.state_dict())
    wrong = CoaT('lite_tiny', init_cfg=[dict(type='Pretrained', checkpoint=path)])
    with pytest.raises(CheckpointError, match='shape mismatches'):
        wrong.init_weights()


def test_model_zoo_names_from_mmseg_bases_are_explained(tmp_path, arch):
    # mmseg's ResNet bases set model.pretrained, which the segmentor hands to the backbone.
    with pytest.raises(CheckpointError, match=r'open-mmlab://resnet50_v1c names a checkpoint of '
                       r'the open-mmlab model zoo.*model\.pretrained=None'):
        CoaT(arch, pretrained='open-mmlab://resnet50_v1c').init_weights()
    with pytest.raises(ValueError, match=r'both.*set model\.pretrained=None'):
        CoaT(arch, pretrained='open-mmlab://resnet50_v1c',
             init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'coat.pth')))


def test_missing_backbone_keys_are_named(tmp_path, arch):
    state_dict = CoaT(arch).state_dict()
    del state_dict['patch_embed3.proj.weight']
    with pytest.raises(CheckpointError, match=r'1 model keys missing.*patch_embed3\.proj\.weight'):
        load_coat_checkpoint(CoaT(arch), _save(tmp_path, state_dict))


def test_foreign_keys_are_refused(tmp_path):
    state_dict = CoaT(TINY_LITE).state_dict()
    state_dict['layer1.0.conv1.weight'] = torch.rand(3)
    with pytest.raises(CheckpointError, match=r'does not have: layer1\.0\.conv1\.weight'):
        load_coat_checkpoint(CoaT(TINY_LITE), _save(tmp_path, state_dict))


def test_classifier_needs_its_head(tmp_path):
    path = _save(tmp_path, CoaT(TINY_LITE).state_dict())
    with pytest.raises(CheckpointError, match=r'missing.*head\.weight'):
        load_coat_checkpoint(CoaTClassifier(TINY_LITE), path)


def test_a_path_object_loads_as_a_string_does(tmp_path):
    state_dict = CoaT(TINY_LITE).state_dict()
    path = tmp_path / 'weights.pth'
    torch.save(state_dict, path)
    model = CoaT(TINY_LITE)
    load_coat_checkpoint(model, path)
    _assert_loaded(model, state_dict)
    from_init_cfg = CoaT(TINY_LITE, init_cfg=dict(type='Pretrained', checkpoint=path))
    from_init_cfg.init_weights()
    _assert_loaded(from_init_cfg, state_dict)


@contextmanager
def _http_server(folder) -> Iterator[str]:
    """A local HTTP server for `folder`, standing in for a model hub; yields its base URL."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(('127.0.0.1', 0),
                                 functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()


def test_a_url_is_downloaded_once_into_torch_hubs_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    served = tmp_path / 'served'
    state_dicts = {}
    for repo in ('a', 'b'):  # as on a model hub: the same file name in every repository
        (served / repo).mkdir(parents=True)
        torch.manual_seed(len(state_dicts))
        state_dicts[repo] = CoaT(TINY_LITE).state_dict()
        torch.save(state_dicts[repo], served / repo / 'pytorch_model.bin')
    with _http_server(served) as base:
        for repo in ('a', 'b'):
            model = CoaT(TINY_LITE)
            load_coat_checkpoint(model, f'{base}/{repo}/pytorch_model.bin')
            _assert_loaded(model, state_dicts[repo])
        with pytest.raises(CheckpointError, match=r'Could not download checkpoint .*absent\.pth '
                           r'\(HTTP Error 404.*download the file yourself'):
            load_coat_checkpoint(CoaT(TINY_LITE), f'{base}/absent.pth')
        with pytest.raises(CheckpointError, match='Could not download checkpoint .*notaport'):
            load_coat_checkpoint(CoaT(TINY_LITE), 'http://127.0.0.1:notaport/x.pth')
        with pytest.raises(CheckpointError, match=r'URL http://\[::1/x.pth is malformed'):
            load_coat_checkpoint(CoaT(TINY_LITE), 'http://[::1/x.pth')
    url = f'{base}/a/pytorch_model.bin'
    cache = tmp_path / 'torch_home' / 'hub' / 'checkpoints'
    assert sorted(p.name.split('-', 1)[1] for p in cache.iterdir()) == ['pytorch_model.bin'] * 2
    model = CoaT(TINY_LITE)
    load_coat_checkpoint(model, url)  # the server is gone: the cached copies serve
    _assert_loaded(model, state_dicts['a'])
    model = CoaT(TINY_LITE)
    load_coat_checkpoint(model, url.replace('/a/', '/b/'))
    _assert_loaded(model, state_dicts['b'])
    cached = next(p for p in cache.iterdir() if torch.equal(
        torch.load(p, weights_only=True)['cls_token1'], state_dicts['a']['cls_token1']))
    cached.write_bytes(b'an error page')
    with pytest.raises(CheckpointError, match=f'{cached} is not a PyTorch checkpoint .*delete it '
                       f'to download {url} again'):
        load_coat_checkpoint(CoaT(TINY_LITE), url)
    monkeypatch.setenv('TORCH_HOME', str(cached))  # a file where the cache folder would go
    with pytest.raises(CheckpointError, match=r'Cannot create torch hub\'s checkpoint cache '
                       r'.*\(Not a directory\)\. Set TORCH_HOME to a folder you can write'):
        load_coat_checkpoint(CoaT(TINY_LITE), url)


def test_safetensors_files_load_like_pth_files(tmp_path, monkeypatch, arch):
    """safetensors stores a tensor shared by several modules once (CoaT shares its CPE, CRPE and
    parallel MLP); the loader fills the other names. From a path, a URL and with the same
    strictness and errors as .pth files; the format is told by the bytes, not the name."""
    torch.manual_seed(3)
    source = CoaTClassifier(arch, num_classes=5)
    path = tmp_path / 'model.safetensors'
    save_model(source, str(path))
    assert len(safe_open_keys(path)) < len(source.state_dict())  # the aliases were left out
    for model in (CoaT(arch), CoaTClassifier(arch, num_classes=5)):
        load_coat_checkpoint(model, path)
        _assert_loaded(model, source.state_dict())
    renamed = tmp_path / 'weights.pth'
    renamed.write_bytes(path.read_bytes())
    load_coat_checkpoint(CoaT(arch), renamed)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    with _http_server(tmp_path) as base:
        model = CoaT(arch)
        load_coat_checkpoint(model, f'{base}/model.safetensors')
        _assert_loaded(model, source.state_dict())
    other = tmp_path / 'lite_tiny.safetensors'
    save_model(CoaT('lite_tiny'), str(other))
    with pytest.raises(CheckpointError, match="The checkpoint is CoaT arch='lite_tiny'"):
        load_coat_checkpoint(CoaT(arch), other)
    truncated = tmp_path / 'truncated.safetensors'
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=f'{truncated} is (truncated|corrupt)'):
        load_coat_checkpoint(CoaT(arch), truncated)
    # Copies of a shared weight that differ are refused, as in a .pth file.
    state_dict = {k: v.clone() for k, v in source.state_dict().items()}
    state_dict['serial_blocks1.0.cpe.proj.weight'] += 1
    edited = tmp_path / 'edited.safetensors'
    save_file(state_dict, str(edited))
    with pytest.raises(CheckpointError, match='differ between their copies'):
        load_coat_checkpoint(CoaTClassifier(arch, num_classes=5), edited)


def safe_open_keys(path) -> list:
    with safe_open(str(path), 'pt') as file:
        return list(file.keys())


def test_corrupt_truncated_and_missing_files_name_the_path(tmp_path):
    good = _save(tmp_path, CoaT(TINY_LITE).state_dict())
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(open(good, 'rb').read()[:2000])
    legacy = tmp_path / 'legacy.pth'
    torch.save(CoaT(TINY_LITE).state_dict(), legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:2000])
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint at all' * 10)
    error_page = tmp_path / 'error_page.pth'
    error_page.write_bytes(b'<html>an error page</html>')
    for path, problem in ((truncated, r'is truncated or damaged \(its zip archive has no end '
                           r'record\); copy or download it again\.'),
                          (legacy, 'is corrupt or truncated'),
                          (garbage, r"is not a PyTorch checkpoint .*with b'not '\); give the "
                           r"\.pth"),
                          (error_page, 'is not a PyTorch checkpoint')):
        with pytest.raises(CheckpointError, match=f'{path} {problem}') as error:
            load_coat_checkpoint(CoaT(TINY_LITE), str(path))
        assert 'weights_only' not in str(error.value)  # torch's advice to load it unsafely
    with pytest.raises(CheckpointError, match='not found: .*absent.pth'):
        load_coat_checkpoint(CoaT(TINY_LITE), str(tmp_path / 'absent.pth'))
    with pytest.raises(CheckpointError, match='is a directory; give the .pth or .safetensors file '
                       'in it'):
        load_coat_checkpoint(CoaT(TINY_LITE), str(tmp_path))


def test_an_unreadable_file_is_not_called_corrupt(tmp_path, monkeypatch):
    path = _save(tmp_path, CoaT(TINY_LITE).state_dict())

    def denied(*args, **kwargs):  # chmod cannot deny root, who runs the tests on CI
        raise PermissionError(13, 'Permission denied', path)

    monkeypatch.setattr(torch, 'load', denied)
    with pytest.raises(CheckpointError, match=f'{path} cannot be read .*Permission denied'):
        load_coat_checkpoint(CoaT(TINY_LITE), path)


def test_legacy_format_files(tmp_path):
    """Pre-1.6 (non-zip) files load too, metadata objects and all, through the same restricted
    unpickler."""
    state_dict = CoaT(TINY_LITE).state_dict()
    for name, content in (('plain.pth', {'model': state_dict}),
                          ('with_args.pth', {'model': state_dict,
                                             'args': argparse.Namespace(lr=0.1)})):
        torch.save(content, tmp_path / name, _use_new_zipfile_serialization=False)
        model = CoaT(TINY_LITE)
        load_coat_checkpoint(model, str(tmp_path / name))
        _assert_loaded(model, state_dict)


class _Hyperparameters(dict):
    """Like Lightning's AttributeDict: a dict subclass in a checkpoint's metadata."""


@pytest.mark.parametrize('container', [_Hyperparameters(lr=0.1), defaultdict(list, a=[1]),
                                       deque([1, 2])],
                         ids=['dict_subclass', 'defaultdict', 'deque'])
def test_metadata_containers_load_as_placeholders(tmp_path, container):
    """Containers that torch's weights-only loader cannot fill (it fills only true dicts and
    lists) are placeholders like any other metadata object: the weights load."""
    state_dict = CoaT(TINY_LITE).state_dict()
    path = _save(tmp_path, {'state_dict': state_dict, 'meta': {'x': container}})
    model = CoaT(TINY_LITE)
    load_coat_checkpoint(model, path)
    _assert_loaded(model, state_dict)


class _Payload:
    """An object whose unpickling would run code if the loader let it."""
    ran = False

    def __reduce__(self):
        return (_Payload._run, ())

    @staticmethod
    def _run():
        _Payload.ran = True
        return 'ran'


def test_loading_never_runs_code_from_the_file(tmp_path):
    state_dict = CoaT(TINY_LITE).state_dict()
    model = CoaT(TINY_LITE)
    allow_mmengine_checkpoints()  # as importing coat_backbone.engine does, for resuming
    for zip_format in (True, False):
        path = tmp_path / f'zip{zip_format}.pth'
        torch.save({'state_dict': state_dict, 'meta': {'hook': _Payload()}}, path,
                   _use_new_zipfile_serialization=zip_format)
        load_coat_checkpoint(model, path)
        assert not _Payload.ran
        _assert_loaded(model, state_dict)
    with pytest.raises(CheckpointError, match='No weights found in .*obj.pth'):
        load_coat_checkpoint(model, _save(tmp_path, {'whole_model': _Payload()}, 'obj.pth'))
    assert not _Payload.ran


@pytest.mark.skipif(not WEIGHTS_ONLY_BY_DEFAULT,
                    reason='before torch 2.6 mmengine needs no allowlist, and none is made')
def test_reading_leaves_torchs_allowlist_as_it_was(tmp_path):
    allow_mmengine_checkpoints()
    allowlist = set(torch.serialization.get_safe_globals())
    assert HistoryBuffer in allowlist
    load_coat_checkpoint(CoaT(TINY_LITE), _save(tmp_path, CoaT(TINY_LITE).state_dict()))
    assert set(torch.serialization.get_safe_globals()) == allowlist


def test_a_pickled_model_and_a_wrong_prefix_name_the_file(tmp_path):
    model = CoaT(TINY_LITE)
    pickled = _save(tmp_path, model, 'model.pth')
    with pytest.raises(CheckpointError, match=f'pickled object, not weights, in {pickled} '
                       r'\(saved with torch.save\(model\)\?\); save model.state_dict\(\)'):
        load_coat_checkpoint(model, pickled)
    weights = _save(tmp_path, model.state_dict(), 'weights.pth')
    with pytest.raises(CheckpointError, match=f"No key of {weights} starts with prefix 'neck.'"):
        load_coat_checkpoint(model, weights, prefix='neck')


def test_tools_build_a_model_from_one_read_of_the_checkpoint(tmp_path, monkeypatch):
    """The architecture and class count come from the weights the model is loaded with."""
    from coat_backbone import checkpoint
    from coat_backbone.toolkit import builder
    saved = CoaTClassifier(TINY_LITE, num_classes=5).state_dict()
    path = _save(tmp_path, saved)
    reads = []
    real_read = checkpoint.read_checkpoint

    def counted_read(source):
        reads.append(source)
        return real_read(source)

    for module in (builder, checkpoint):
        monkeypatch.setattr(module, 'read_checkpoint', counted_read)
    model = builder.build_model(arch=TINY_LITE, checkpoint=path, classifier=True)
    assert reads == [path] and model.num_classes == 5 and not model.training
    _assert_loaded(model, saved)
    with _logged_messages() as messages:
        backbone = builder.build_model(checkpoint=path, arch=TINY_LITE)
    _assert_loaded(backbone, {k: v for k, v in saved.items() if k in backbone.state_dict()})
    assert messages == [f'Loaded {path} (bare state dict) into CoaT(arch={TINY_LITE!r}); dropped '
                        f'4 keys the model does not use: head, norm4']
    # Without an arch, the weights' shapes give it.
    reads.clear()
    backbone = builder.build_model(checkpoint=path)
    assert reads == [path] and backbone.arch_settings == resolve_arch(TINY_LITE)
    _assert_loaded(backbone, {k: v for k, v in saved.items() if k in backbone.state_dict()})
    foreign = _save(tmp_path, {'conv1.weight': torch.ones(2)}, 'resnet.pth')
    with pytest.raises(CheckpointError, match=r'resnet.pth \(bare state dict\) holds no CoaT '
                       r"weights .*another model's checkpoint"):
        builder.build_model(checkpoint=foreign)


@pytest.mark.parametrize('name', sorted(ARCH_SETTINGS))
def test_the_weights_name_their_published_variant(name):
    with torch.device('meta'):
        assert arch_of(CoaT(name).state_dict()) == name
        assert arch_of(CoaTClassifier(name).state_dict()) == name


def test_the_weights_give_a_custom_arch_whole():
    # Ratios whose hidden width int(dim * ratio) rounds down, which hidden / dim must give back.
    # int(56 * 1.09) = 61, but 56 * (61 / 56) is a hair under 61 in floating point.
    arch = dict(embed_dims=[8, 56, 56, 56], serial_depths=[1, 3, 2, 1], parallel_depth=1,
                num_heads=8, mlp_ratios=[0.3, 1.09, 1.09, 1.09])
    state_dict = CoaT(arch).state_dict()
    settings = arch_settings_of(state_dict)
    assert {k: v for k, v in settings.items() if k != 'mlp_ratios'} == {
        k: v for k, v in arch.items() if k != 'mlp_ratios'}
    CoaT(settings).load_state_dict(state_dict)  # strict: every shape and depth is the same
    assert arch_of(state_dict) == settings  # the settings, as no published variant has them
    assert arch_settings_of({'conv1.weight': torch.ones(2)}) is None
