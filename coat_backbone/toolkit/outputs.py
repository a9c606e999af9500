"""Where the tools write: checked before the work, written whole, nothing a user has replaced.

Every tool that writes a file (checkpoint conversion, ONNX export, the benchmark's JSON, pictures
of curves, attention and predictions, test results) checks its destination before its long work
(testing, benchmarking, exporting, running the model), so a path it cannot write is named at
once rather than after minutes of work.
"""
import os
import tempfile
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

PathLike = Union[str, os.PathLike]


def check_writable_folder(folder: PathLike, what: str) -> None:
    """Raise an OSError naming `what` (e.g. '--out runs/b.json') unless files can be written in
    `folder`, which need not exist yet: its nearest existing ancestor must be a folder this
    process can write in. Nothing is created. The path is taken as the writers take it (a quoted
    `~` is not expanded)."""
    folder = Path(folder)
    try:
        existing = next(path for path in (folder, *folder.parents) if path.exists())
        is_folder = existing.is_dir()
        if is_folder:
            with tempfile.TemporaryFile(dir=existing):
                pass
    except OSError as error:  # permissions, a read-only file system, no space
        raise PermissionError(f'{what}: cannot write in {folder} ({error.strerror}); choose '
                              f'another path.') from None
    if not is_folder:
        raise NotADirectoryError(f'{what}: {existing} is a file, not a folder; choose another '
                                 f'path.')


def check_output_file(path: PathLike, force: bool = False,
                      protected: Iterable[PathLike] = ()) -> None:
    """Raise an OSError naming the problem and the fix unless a file can be written at `path`:
    its folder can be written (`check_writable_folder`), it is not a directory nor one of the
    command's inputs (`protected`), and it does not exist unless `force`."""
    path = Path(path)
    check_writable_folder(path.parent, str(path))
    if path.resolve() in {Path(p).expanduser().resolve() for p in protected}:
        raise FileExistsError(f'{path} is an input of this command; write elsewhere.')
    if path.is_dir():
        raise IsADirectoryError(f'{path} is a directory; give the output a file name.')
    if path.exists() and not force:
        raise FileExistsError(f'{path} exists; choose another name or pass --force to replace '
                              f'it.')


def write_atomically(path: PathLike, write: Callable[[Path], None], force: bool = False,
                     protected: Iterable[PathLike] = (),
                     rename: Optional[Callable[[Path], Path]] = None) -> Path:
    """Write a file through `write(temporary_path)` next to `path`, then move it into place.

    A reader never sees a half-written file, and an existing file is replaced only when `force`
    (and never a `protected` one, such as the conversion's input). `rename` maps the finished
    temporary file to its final path (content-addressed names). Returns the final path.
    """
    path = Path(path)
    # Fail before the work: the folder always, the name when it is known in advance.
    if rename is None:
        check_output_file(path, force, protected)
    else:
        check_writable_folder(path.parent, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f'.{path.name}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        write(temporary)
        final = rename(temporary) if rename else path
        check_output_file(final, force, protected)
        os.replace(temporary, final)
    finally:
        with suppress(OSError):  # the error that got here matters, not a failed clean-up
            temporary.unlink(missing_ok=True)
    return final
