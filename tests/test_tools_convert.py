"""tools/convert_checkpoint.py: formats, publishing, verification, and never losing a file."""
import argparse
import hashlib

import pytest
import torch

from coat_backbone import CoaT, CoaTClassifier, load_coat_checkpoint
from coat_backbone.models import coat
from coat_backbone.toolkit import conversion
from tiny_archs import TINY_COAT, TINY_LITE
from tool_runner import load_tool

convert = load_tool('convert_checkpoint')
ARCH = repr(TINY_COAT)


@pytest.fixture(scope='module')
def official(tmp_path_factory):
    """An official-style training file of the tiny parallel arch: weights under 'model' (with
    the unused norm1), optimizer state and an argparse Namespace."""
    torch.manual_seed(0)
    classifier = CoaTClassifier(TINY_COAT, num_classes=7)
    state_dict = classifier.state_dict()
    state_dict['norm1.weight'] = torch.rand(TINY_COAT['embed_dims'][0])
    state_dict['norm1.bias'] = torch.rand(TINY_COAT['embed_dims'][0])
    path = tmp_path_factory.mktemp('official') / 'coat_tiny_test.pth'
    torch.save({'model': state_dict, 'optimizer': {'state': {0: torch.ones(3)}},
                'epoch': 299, 'args': argparse.Namespace(lr=5e-4)}, path)
    return path, classifier


@pytest.fixture
def detector(tmp_path):
    """An mmdet-style training file: backbone, neck, meta with dataset classes, message hub."""
    backbone = CoaT(TINY_COAT).state_dict()
    state_dict = {**{f'backbone.{k}': v for k, v in backbone.items()}, 'neck.conv.weight':
                  torch.ones(4, 4)}
    path = tmp_path / 'epoch_12.pth'
    torch.save({'state_dict': state_dict, 'meta': {'dataset_meta': {'classes': ('cat', 'dog')},
                                                   'epoch': 12, 'hook': argparse.Namespace()},
                'message_hub': argparse.Namespace(x=1), 'optimizer': {'state': {}}}, path)
    return path, backbone


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def _no_leftovers(folder):
    assert not [p.name for p in folder.iterdir() if p.name.endswith('.tmp')]


def test_help():
    with pytest.raises(SystemExit) as exit_info:
        convert.main(['--help'])
    assert exit_info.value.code == 0


def test_official_file_to_each_format(official, tmp_path):
    path, classifier = official
    expected = classifier.state_dict()
    for fmt in ('backbone', 'backbone-prefixed', 'classifier'):
        out = tmp_path / f'{fmt}.pth'
        assert convert.main([str(path), str(out), '--to', fmt, '--arch', ARCH]) == 0
        saved = _load(out)  # weights_only: nothing but tensors and plain meta
        assert set(saved) == {'state_dict', 'meta'}
        assert saved['meta']['coat_format'] == fmt
        assert saved['meta']['source_sha256'] == hashlib.sha256(path.read_bytes()).hexdigest()
        model = CoaTClassifier(TINY_COAT, num_classes=7) if fmt == 'classifier' else CoaT(
            TINY_COAT)
        # Exactly the model's keys: no head in a backbone, no unused norm1 anywhere.
        prefix = 'backbone.' if fmt == 'backbone-prefixed' else ''
        assert set(saved['state_dict']) == {prefix + key for key in model.state_dict()}
        load_coat_checkpoint(model, str(out))
        for key, value in model.state_dict().items():
            assert torch.equal(value, expected[key]), key
    _no_leftovers(tmp_path)


def test_detector_weights_and_classifier_refusal(detector, tmp_path, capsys):
    path, backbone = detector
    out = tmp_path / 'detector.pth'
    assert convert.main([str(path), str(out), '--to', 'weights']) == 0
    saved = _load(out)
    assert set(saved['state_dict']) == {f'backbone.{k}' for k in backbone} | {'neck.conv.weight'}
    assert saved['meta']['dataset_meta'] == {'classes': ('cat', 'dog')}
    assert saved['meta']['epoch'] == 12 and 'hook' not in saved['meta']  # objects are dropped
    assert convert.main([str(path), str(tmp_path / 'c.pth'), '--to', 'classifier',
                         '--arch', ARCH]) == 2
    assert 'no classification head' in capsys.readouterr().err
    assert not (tmp_path / 'c.pth').exists()


def test_a_custom_arch_is_read_from_the_weights(detector, tmp_path, capsys):
    path, backbone = detector
    assert convert.main([str(path), str(tmp_path / 'b.pth')]) == 0
    saved = _load(tmp_path / 'b.pth')
    assert saved['meta']['coat_arch'] == TINY_COAT
    assert saved['state_dict'].keys() == backbone.keys()
    assert all(torch.equal(saved['state_dict'][k], v) for k, v in backbone.items())
    assert convert.main([str(path), '--verify']) == 1
    assert "Weights: CoaT arch {'embed_dims': [16, 32, 32, 32]" in capsys.readouterr().out


def test_publish_names_by_content_and_never_overwrites(official, tmp_path, capsys):
    path, _ = official
    args = [str(path), str(tmp_path / 'coat_tiny_test.pth'), '--arch', ARCH, '--publish']
    assert convert.main(args) == 0
    published = [p for p in tmp_path.iterdir() if p.suffix == '.pth']
    assert len(published) == 1
    digest = hashlib.sha256(published[0].read_bytes()).hexdigest()
    assert published[0].name == f'coat_tiny_test_{digest[:8]}.pth'
    # Publishing is reproducible: the same input gives the same file, which is not replaced.
    before = published[0].stat().st_mtime_ns
    assert convert.main(args) == 2
    assert 'exists' in capsys.readouterr().err
    assert published[0].stat().st_mtime_ns == before
    assert convert.main(args + ['--force']) == 0
    assert [p for p in tmp_path.iterdir() if p.suffix == '.pth'] == published
    _no_leftovers(tmp_path)


def test_existing_files_and_the_input_are_never_lost(official, tmp_path, capsys, monkeypatch):
    path, _ = official
    out = tmp_path / 'mine.pth'
    out.write_bytes(b'precious')
    assert convert.main([str(path), str(out), '--arch', ARCH]) == 2
    assert out.read_bytes() == b'precious'
    assert convert.main([str(path), str(out), '--arch', ARCH, '--force']) == 0
    assert 'state_dict' in _load(out)
    original = path.read_bytes()
    assert convert.main([str(path), str(path), '--arch', ARCH, '--force']) == 2
    assert 'is an input' in capsys.readouterr().err
    assert path.read_bytes() == original
    monkeypatch.setenv('HOME', str(path.parent))  # a quoted `~`, expanded as by mmengine
    home_path = f'~/{path.name}'
    assert convert.main([home_path, str(path), '--arch', ARCH, '--force']) == 2
    assert 'is an input' in capsys.readouterr().err
    assert convert.main([home_path, str(tmp_path / 'from_home.pth'), '--arch', ARCH]) == 0
    folder = tmp_path / 'outputs'
    (folder / 'kept.txt').parent.mkdir()
    (folder / 'kept.txt').write_text('mine')
    for force in ([], ['--force']):
        assert convert.main([str(path), str(folder), '--arch', ARCH, *force]) == 2
        assert f'{folder} is a directory; give the output a file name' in capsys.readouterr().err
    assert (folder / 'kept.txt').read_text() == 'mine'
    assert convert.main([str(path), str(out / 'deeper.pth'), '--arch', ARCH]) == 2
    assert f'{out} is a file, not a folder; choose another path' in capsys.readouterr().err
    _no_leftovers(tmp_path)


def test_verify(monkeypatch, tmp_path, capsys):
    # A stand-in "published" variant and file: the real ones cannot be downloaded here.
    monkeypatch.setitem(coat.ARCH_SETTINGS, 'lite_test', TINY_LITE)
    path = tmp_path / 'coat_lite_test.pth'
    torch.save({'model': CoaTClassifier(TINY_LITE, num_classes=3).state_dict()}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    assert convert.main([str(path), '--verify']) == 1
    out = capsys.readouterr().out
    assert digest in out and 'Not a published file' in out and "CoaT arch 'lite_test'" in out
    monkeypatch.setenv('HOME', str(tmp_path))  # a quoted `~` is expanded, as by mmengine
    assert convert.main(['~/coat_lite_test.pth', '--verify']) == 1
    assert digest in capsys.readouterr().out

    monkeypatch.setitem(conversion.PUBLISHED, digest[:8], ('lite_test', 224))
    assert convert.main([str(path), '--verify']) == 0
    assert f'OK: the published coat_lite_test_{digest[:8]}.pth' in capsys.readouterr().out

    renamed = path.rename(tmp_path / 'coat_lite_test_0badf00d.pth')
    assert convert.main([str(renamed), '--verify']) == 0
    out = capsys.readouterr().out
    assert 'says 0badf00d' in out and 'the file was renamed' in out and 'damaged' not in out
    # The same name on other content: that content was changed.
    torch.save({'model': CoaTClassifier(TINY_LITE, num_classes=3).state_dict()}, renamed)
    assert convert.main([str(renamed), '--verify']) == 1
    assert 'the file is damaged or was modified' in capsys.readouterr().out

    foreign = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.ones(2)}, foreign)
    assert convert.main([str(foreign), '--verify']) == 1
    assert 'Weights: not CoaT.' in capsys.readouterr().out
