"""Output paths are checked before the work, and written whole (coat_backbone.toolkit.outputs)."""
import errno

import pytest

from coat_backbone.toolkit import outputs
from coat_backbone.toolkit.outputs import check_writable_folder, write_atomically


def test_a_file_in_the_way_is_named_and_nothing_is_created(tmp_path):
    blocker = tmp_path / 'results'
    blocker.write_text('a file of the user')
    for folder in (blocker, blocker / 'deeper' / 'still'):
        with pytest.raises(NotADirectoryError, match=f'--out x: {blocker} is a file, not a '
                           f'folder; choose another path'):
            check_writable_folder(folder, '--out x')
    assert blocker.read_text() == 'a file of the user'
    check_writable_folder(tmp_path / 'new' / 'folder', '--out y')
    assert not (tmp_path / 'new').exists()


def test_a_folder_that_cannot_be_written_is_named(tmp_path, monkeypatch):
    # Tests run as root, whom permission bits do not stop: fail the probe as a read-only mount.
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, 'Read-only file system')

    monkeypatch.setattr(outputs.tempfile, 'TemporaryFile', read_only)
    with pytest.raises(PermissionError, match=f'--out-dir o: cannot write in {tmp_path / "o"} '
                       r'\(Read-only file system\); choose another path'):
        check_writable_folder(tmp_path / 'o', '--out-dir o')
    monkeypatch.undo()
    check_writable_folder(tmp_path / 'o', '--out-dir o')

    # An ancestor this user may not search: Path.exists raises, as for a non-root user.
    def unsearchable(path):
        raise PermissionError(errno.EACCES, 'Permission denied')

    monkeypatch.setattr(outputs.Path, 'exists', unsearchable)
    with pytest.raises(PermissionError, match=r'--out x: cannot write in .*o \(Permission '
                       r'denied\); choose another path'):
        check_writable_folder(tmp_path / 'o', '--out x')


def test_write_atomically_checks_the_folder_before_the_work(tmp_path):
    (tmp_path / 'afile').write_text('')
    work = []
    with pytest.raises(NotADirectoryError, match='afile is a file, not a folder'):
        write_atomically(tmp_path / 'afile' / 'out.json', work.append)
    assert work == []


def test_the_writers_error_survives_a_failed_clean_up(tmp_path):
    def write(temporary):
        temporary.mkdir()  # its clean-up (unlink) then fails too
        raise RuntimeError('the export failed')

    with pytest.raises(RuntimeError, match='the export failed'):
        write_atomically(tmp_path / 'model.onnx', write)
    assert not (tmp_path / 'model.onnx').exists()
