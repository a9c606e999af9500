"""A stand-in Hugging Face Hub on 127.0.0.1 that the real `huggingface_hub` client downloads from.

It answers `HEAD` and `GET /{org}/{repo}/resolve/{revision}/{path}` as the Hub does for a file
(`X-Repo-Commit`, `ETag`, `X-Linked-Etag`, `X-Linked-Size`), and names a missing repository,
revision or file with the Hub's `X-Error-Code`. Clients reach it through `HF_ENDPOINT`, which
`huggingface_hub` reads when it is first imported, so they run in subprocesses (`run_python`)
with the Hub's variables set; nothing of `huggingface_hub` is replaced.
"""
import hashlib
import json
import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]


class Repository:
    """Files of one Hub repository by revision: `main` and any tags, each a commit."""

    def __init__(self, files: Dict[str, bytes], **tags: Dict[str, bytes]) -> None:
        self.revisions = {'main': files, **tags}
        self.commits = {name: hashlib.sha1(name.encode()).hexdigest()
                        for name in self.revisions}

    def resolve(self, revision: str) -> Optional[Tuple[str, Dict[str, bytes]]]:
        """(commit, files) of a branch, tag or commit; None for an unknown revision."""
        for name, commit in self.commits.items():
            if revision in (name, commit):
                return commit, self.revisions[name]
        return None


class StandInHub:
    """The served repositories (`repo_id` -> `Repository`), the requests received, and a switch
    that makes every answer a 503, as a failing mirror's."""

    def __init__(self, repos: Dict[str, Repository]) -> None:
        self.repos = repos
        self.requests: List[str] = []
        self.failing = False
        self.url = ''


def _handler(hub: StandInHub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _error(self, status: int, code: str) -> None:
            body = json.dumps({'error': code}).encode()
            self.send_response(status)
            self.send_header('X-Error-Code', code)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            if self.command == 'GET':
                self.wfile.write(body)

        def _answer(self) -> None:
            hub.requests.append(f'{self.command} {self.path}')
            if hub.failing:
                return self._error(503, 'ServiceUnavailable')
            parts = self.path.split('?')[0].strip('/').split('/')
            if len(parts) < 5 or parts[2] != 'resolve':
                return self._error(404, 'RepoNotFound')
            repo = hub.repos.get('/'.join(parts[:2]))
            if repo is None:
                return self._error(404, 'RepoNotFound')
            resolved = repo.resolve(parts[3])
            if resolved is None:
                return self._error(404, 'RevisionNotFound')
            commit, files = resolved
            data = files.get('/'.join(parts[4:]))
            if data is None:
                return self._error(404, 'EntryNotFound')
            etag = f'"{hashlib.sha256(data).hexdigest()}"'
            self.send_response(200)
            self.send_header('X-Repo-Commit', commit)
            self.send_header('ETag', etag)
            self.send_header('X-Linked-Etag', etag)
            self.send_header('X-Linked-Size', str(len(data)))
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            if self.command == 'GET':
                self.wfile.write(data)

        do_HEAD = do_GET = _answer

    return Handler


@contextmanager
def serve_hub(repos: Dict[str, Repository]) -> Iterator[StandInHub]:
    hub = StandInHub(repos)
    server = ThreadingHTTPServer(('127.0.0.1', 0), _handler(hub))
    hub.url = f'http://127.0.0.1:{server.server_address[1]}'
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()


def hub_env(home: Path, endpoint: str, offline: bool = False) -> Dict[str, str]:
    """The environment of a client of the stand-in: its endpoint and its own cache."""
    env = {key: value for key, value in os.environ.items() if not key.startswith('HF_')}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(home), HF_HUB_DISABLE_XET='1',
               HF_HUB_DISABLE_TELEMETRY='1', HF_HUB_ETAG_TIMEOUT='5', HF_HUB_DOWNLOAD_TIMEOUT='5',
               TORCH_HOME=str(home / 'torch'))
    if offline:
        env['HF_HUB_OFFLINE'] = '1'
    return env


def run_python(code: str, env: Dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter from the checkout, with `env`."""
    return subprocess.run([sys.executable, '-c', code, *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
