"""Run a tools/ script's `main` in the test process, as its command line would (the heavy imports
are paid once per session instead of once per call), and read what it refuses; and a free port
for the scripts that start several processes."""
import importlib.util
import socket
from pathlib import Path
from types import ModuleType
from typing import Callable, List

import pytest

TOOLS = Path(__file__).resolve().parents[1] / 'tools'


def load_tool(name: str) -> ModuleType:
    """tools/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(f'tools_{name}', TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> str:
    """A TCP port nobody listens on, for a process group's rendezvous."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def refusal(main: Callable[[List[str]], None], argv: List[str], capsys) -> str:
    """What a tool's `main(argv)` prints as it refuses its input: one line on stderr and exit
    status 2, like argparse's usage errors, and no traceback."""
    capsys.readouterr()  # what came before
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert 'Traceback' not in message
    return message
