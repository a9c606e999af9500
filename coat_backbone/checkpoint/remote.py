"""Checkpoints named by where they are published: an http(s) URL, or a Hugging Face Hub name as timm
writes it (`hf-hub:timm/coat_small.in1k`). Each becomes a local file in its cache, downloaded once.

Hub names: `hf-hub:ORG/REPO[@REVISION][/PATH/IN/REPO]`. Without a path the repository's
`model.safetensors` is taken, else its `pytorch_model.bin` (timm publishes both names). Downloads
go through `huggingface_hub`, so the user's settings apply as in every Hub tool: `HF_HOME` /
`HF_HUB_CACHE` (where files are kept), `HF_ENDPOINT` (a mirror), `HF_HUB_OFFLINE=1` (cached files
only) and tokens (`HF_TOKEN`, or the one `hf auth login` stored).

In a distributed run, rank 0 downloads first and the other ranks wait for it, then find the file
in the cache (ranks of other machines download their own copy).
"""
import hashlib
import os
import os.path as osp
import re
from http.client import HTTPException
from typing import NamedTuple, Optional
from urllib.parse import urlparse

import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.logging import print_log

from .errors import CheckpointError

HUB_PREFIX = 'hf-hub:'
# Tried in this order when a Hub name gives no file: timm's weights, then its older file name.
HUB_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
_HUB_NAME = re.compile(r'^(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>[^/]+))?(?:/(?P<file>.+))?$')


class HubName(NamedTuple):
    repo_id: str
    revision: Optional[str]
    filename: Optional[str]


def is_remote(name: str) -> bool:
    """Whether `name` is a URL or a Hub name rather than a path."""
    return name.startswith(('http://', 'https://', HUB_PREFIX))


def parse_hub_name(name: str) -> HubName:
    """`hf-hub:ORG/REPO[@REVISION][/PATH]` -> its parts; a malformed name is refused."""
    match = _HUB_NAME.match(name[len(HUB_PREFIX):])
    if not match:
        raise CheckpointError(
            f'{name} is not a Hub name: write hf-hub:ORG/REPO (e.g. hf-hub:timm/coat_small.in1k), '
            f'optionally with @REVISION after the repository and /PATH/IN/REPO to name a file.')
    return HubName(match['repo'], match['revision'], match['file'])


def local_copy(name: str) -> str:
    """The local file of a URL or Hub name, downloaded into its cache first if need be (rank 0
    before the others); any other name is returned as it is."""
    if not is_remote(name):
        return name
    fetch = _hub_download if name.startswith(HUB_PREFIX) else _url_download
    rank, world_size = get_dist_info()
    if rank == 0:
        path = fetch(name)
    if world_size > 1:
        barrier()
    if rank > 0:
        path = fetch(name)
    return path


def _url_download(url: str) -> str:
    """The local copy of `url` in torch hub's checkpoint cache, downloaded if it is not there.

    The file is named after a hash of the whole URL as well as its file name: hubs serve many
    models under one name (`pytorch_model.bin`), which must not share a cached file.
    Processes downloading at once each write their own temporary file, renamed into place when
    complete, so none reads a partial file.
    """
    try:
        name = osp.basename(urlparse(url).path) or 'checkpoint'
    except ValueError as error:
        raise CheckpointError(f'Checkpoint URL {url} is malformed ({error}).') from error
    url_hash = hashlib.sha256(url.encode()).hexdigest()[:8]
    cached = osp.join(torch.hub.get_dir(), 'checkpoints', f'{url_hash}-{name}')
    if not osp.isfile(cached):
        try:
            os.makedirs(osp.dirname(cached), exist_ok=True)
        except OSError as error:
            raise CheckpointError(
                f'Cannot create torch hub\'s checkpoint cache {osp.dirname(cached)} to download '
                f'{url} into ({error.strerror}). Set TORCH_HOME to a folder you can write, or '
                f'download the file yourself and give its local path.') from error
        print_log(f'Downloading {url} to {cached}', logger='current')
        try:
            torch.hub.download_url_to_file(url, cached)
        except (OSError, ValueError, HTTPException) as error:  # network, HTTP, bad URLs
            raise CheckpointError(
                f'Could not download checkpoint {url} ({error}). Check the address and the '
                f'network, or download the file yourself and give its local path.') from error
    return cached


def _hub_download(name: str) -> str:
    """The cached file of a Hub name, downloaded by `huggingface_hub` if it is not cached."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HfHubHTTPError,
                                        LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)
    repo_id, revision, filename = parse_hub_name(name)
    at = f' at revision {revision}' if revision else ''
    candidates = [filename] if filename else HUB_WEIGHT_FILES
    fetch_first = (f'download it where the Hub can be reached, into the same cache, with `python '
                   f'tools/download_weights.py {name}`, then run with HF_HUB_OFFLINE=1')
    missing = unreachable = None
    for candidate in candidates:
        try:
            # Once the Hub did not answer, the other names are looked up in the cache only:
            # the client retries an unreachable Hub for about 20 s per file.
            return hf_hub_download(repo_id, candidate, revision=revision,
                                   local_files_only=unreachable is not None)
        except LocalEntryNotFoundError as error:  # not cached, and no Hub to ask
            unreachable = unreachable or error
        except EntryNotFoundError as error:
            missing = error
        except RevisionNotFoundError as error:
            raise CheckpointError(f'{name}: the repository {repo_id} has no revision {revision!r}'
                                  f'; give an existing branch, tag or commit after @.') from error
        except GatedRepoError as error:
            raise CheckpointError(
                f'{name}: {repo_id} is gated: accept its conditions on the Hub, then log in '
                f'(`hf auth login`) or set HF_TOKEN.') from error
        except RepositoryNotFoundError as error:
            raise CheckpointError(
                f'{name}: no repository {repo_id} on {constants.ENDPOINT} (or it is private: log '
                f'in with `hf auth login` or set HF_TOKEN). Check the name: timm\'s are '
                f'hf-hub:timm/<model>.<tag>, e.g. hf-hub:timm/coat_small.in1k.') from error
        except HfHubHTTPError as error:
            raise CheckpointError(
                f'{name}: the Hub at {constants.ENDPOINT} failed ({error}). Try again later, check '
                f'HF_ENDPOINT (a mirror), or {fetch_first}.') from error
        except OSError as error:  # the cache folder, a full disk
            raise CheckpointError(
                f'{name}: cannot store {repo_id}/{candidate} in the Hugging Face cache '
                f'{constants.HF_HUB_CACHE} ({error}). Set HF_HOME or HF_HUB_CACHE to a folder you '
                f'can write.') from error
    files = ' nor '.join(candidates)
    if unreachable is not None and constants.HF_HUB_OFFLINE:
        raise CheckpointError(
            f'{name}: {repo_id}{at} has no {files} in the Hugging Face cache '
            f'({constants.HF_HUB_CACHE}), and HF_HUB_OFFLINE=1 forbids downloading. Unset '
            f'HF_HUB_OFFLINE, or {fetch_first}.') from unreachable
    if unreachable is not None:
        raise CheckpointError(
            f'{name}: cannot reach the Hugging Face Hub at {constants.ENDPOINT} to download '
            f'{repo_id}{at}, and its {files} is not in the cache ({constants.HF_HUB_CACHE}). Check '
            f'the network and HF_ENDPOINT (a mirror), or {fetch_first}.') from unreachable
    raise CheckpointError(
        f'{name}: the repository {repo_id}{at} has no {files}. Name the weights file after the '
        f'repository: hf-hub:{repo_id}{"@" + revision if revision else ""}/FILE.') from missing
