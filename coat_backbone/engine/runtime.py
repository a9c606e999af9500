"""Building an mmengine `Runner` from a config on whatever machine runs it.

Shared by tools/train.py and tools/test.py. Nothing here is specific to mmdet or mmseg: the
config's `default_scope` decides which library's registries the Runner uses.
"""
import glob
import logging
import os
import os.path as osp
import re
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..checkpoint import HUB_PREFIX, check_checkpoint_file, local_copy
from ..models.coat import CoaT
from ..models.coatnet import CoAtNet
from ..toolkit.outputs import check_writable_folder
from .hooks import checkpoint_name_pattern


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file (bases and `custom_imports` resolved) and apply `--cfg-options`."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def default_work_dir(config_path: str) -> str:
    """work_dirs/<config file name without .py>, mmdet's and mmseg's convention."""
    return osp.join('work_dirs', osp.splitext(osp.basename(config_path))[0])


def set_resume(cfg: Config, resume: Optional[str]) -> None:
    """`--resume` without a value: from `<work_dir>/last_checkpoint` if there is one, else the
    run the config describes, as without `--resume` (a new run from its `load_from`, which
    `refuse_to_overwrite_a_run` allows only in a work_dir without checkpoints); with a path: from
    that checkpoint."""
    if resume is None:
        return
    if resume != 'auto':
        if not osp.isfile(resume):
            raise FileNotFoundError(f'--resume {resume}: no such checkpoint file.')
        cfg.resume, cfg.load_from = True, resume
        return
    pointer = osp.join(cfg.work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        # mmengine would clear load_from and find nothing to resume: a fine-tuning run would
        # start from random weights. The config stays as it is.
        print_log(f'--resume: {cfg.work_dir} has no last_checkpoint, so the run starts as it '
                  f'would without --resume.', logger='current')
        return
    with open(pointer, encoding='utf-8') as file:
        last = file.read().strip()
    pick = f'--resume {osp.join(cfg.work_dir, "epoch_N.pth")}'
    if '://' not in last:
        if not osp.isfile(last):
            raise FileNotFoundError(f'{pointer} names {last!r}, which does not exist. Pick a '
                                    f'checkpoint of {cfg.work_dir} yourself: {pick}.')
        check_checkpoint_file(last, fix=f'resume from an earlier checkpoint of {cfg.work_dir}: '
                                        f'{pick}')
    cfg.resume, cfg.load_from = True, None


def hub_weights(node: Any) -> List[str]:
    """Every Hugging Face Hub name a (part of a) config gives as weights: `load_from`,
    `pretrained` and `init_cfg=dict(type='Pretrained', checkpoint=...)`, at any depth."""
    names: List[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if (key in ('load_from', 'pretrained', 'checkpoint') and isinstance(value, str)
                    and value.startswith(HUB_PREFIX)):
                names.append(value)
            else:
                names += hub_weights(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            names += hub_weights(value)
    return names


def check_weights_to_load(cfg: Config, training: bool = True) -> None:
    """Before the Runner builds the model and datasets: refuse a local `load_from` (a checkpoint
    to test, resume or start from) that is missing or is no checkpoint, and download the Hub
    weights the run will read (`load_from`, and when `training` the model's init_cfg or
    pretrained weights), so that a Hub failure (offline, a wrong name) is named at once and the
    run finds them in the cache."""
    read = cfg.to_dict() if training else dict(load_from=cfg.get('load_from'))
    for name in dict.fromkeys(hub_weights(read)):
        local_copy(name)
    path = cfg.get('load_from')
    if not path or '://' in path or path.startswith(HUB_PREFIX):
        return
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path}')
    check_checkpoint_file(path)


# This project's backbones by registered name; each built one tells its `out_channels`.
PROJECT_BACKBONES = {'CoaT': CoaT, 'CoAtNet': CoAtNet}


def check_neck_fits_backbone(cfg: Config) -> None:
    """Refuse a neck, or without one an mmseg head, whose `in_channels` are not the channels of
    the outputs of this project's backbone (CoaT, CoAtNet): the first iteration would fail inside a
    convolution, with no word of the config. Typical after changing the backbone's arch without
    the neck."""
    model = cfg.get('model') or {}
    backbone = model.get('backbone') or {}
    # A registered name, possibly with its scope ('mmdet.CoaT').
    backbone_class = PROJECT_BACKBONES.get(str(backbone.get('type', '')).rsplit('.', 1)[-1])
    if backbone_class is None:
        return
    settings = {key: value for key, value in backbone.items()
                if key not in ('type', 'init_cfg', 'pretrained')}
    try:
        with torch.device('meta'):  # shapes only: no memory, no initialisation cost
            built = backbone_class(**settings)
        channels = built.out_channels
    except (TypeError, ValueError):
        return  # building the model names what is wrong with the backbone itself
    neck = model.get('neck')
    neck = neck[0] if isinstance(neck, (list, tuple)) and neck else neck
    if neck:
        takers = [('model.neck', neck, channels)]
    else:
        auxiliary = model.get('auxiliary_head')
        heads = [('model.decode_head', model.get('decode_head'))] + (
            [(f'model.auxiliary_head[{i}]', head) for i, head in enumerate(auxiliary)]
            if isinstance(auxiliary, (list, tuple)) else [('model.auxiliary_head', auxiliary)])
        takers = []
        for where, head in [(where, head) for where, head in heads if head]:
            index = head.get('in_index', -1)  # mmseg's default: the last map
            try:
                wanted = ([channels[i] for i in index] if isinstance(index, (list, tuple))
                          else channels[index])
            except (IndexError, TypeError):
                continue  # an in_index the backbone cannot serve: mmseg names it
            takers.append((where, head, wanted))
    for where, taker, wanted in takers:
        given = taker.get('in_channels')
        given = list(given) if isinstance(given, (list, tuple)) else given
        if given is not None and given != wanted:
            arch = f'arch={backbone["arch"]!r}' if 'arch' in backbone else 'its default arch'
            raise ValueError(
                f'{where}.in_channels={given} does not fit the backbone: '
                f'{backbone_class.__name__} with {arch} and out_indices={built.out_indices} '
                f'returns maps of {channels} channels. Set {where}.in_channels={wanted}.')


def refuse_to_overwrite_a_run(cfg: Config, force: bool, can_resume: bool = True) -> None:
    """Unless `force`, refuse a run that would write its checkpoints over an earlier run's:
    - a new run in a work_dir holding checkpoints (it writes `epoch_N.pth` / `iter_N.pth` and
      `last_checkpoint` under the names the earlier run used);
    - `resume=True` without `load_from` in a work_dir without `last_checkpoint`, which mmengine
      starts from scratch;
    - `--resume CKPT`, which continues numbering after CKPT's step, where that would replace later
      checkpoints of CKPT's run, or the checkpoints of another run.
    `can_resume`: the tool has a `--resume` to suggest."""
    if force:
        return
    work_dir = cfg.work_dir
    has_pointer = osp.isfile(osp.join(work_dir, 'last_checkpoint'))
    steps = _periodic_checkpoints(cfg, work_dir)
    if cfg.get('resume') and cfg.get('load_from'):
        _refuse_to_resume_over_checkpoints(cfg, cfg.load_from, steps)
        return
    if cfg.get('resume') and has_pointer:
        return
    found = sorted(steps, key=steps.get) + sorted(
        {osp.basename(path) for path in glob.glob(osp.join(glob.escape(work_dir), '*.pth'))}
        - set(steps))
    if not found and not has_pointer:
        return
    shown = ', '.join((['last_checkpoint'] if has_pointer else []) + found[:4]) \
        + (', ...' if len(found) > 4 else '')
    earlier = f'{work_dir} holds an earlier run ({shown})'
    if has_pointer:
        resume = '--resume'
    else:  # `--resume` alone would not find it: name the latest periodic checkpoint, if any
        earlier += ' without a last_checkpoint to resume from'
        resume = f'--resume {osp.join(work_dir, max(steps, key=steps.get))}' if steps else None
    raise FileExistsError(
        f'{earlier}, which a new run would overwrite. '
        + (f'Continue it with {resume}, give' if can_resume and resume else 'Give')
        + ' the new run another --work-dir, or pass --force to train over it.')


def _name_patterns(cfg: Config) -> List[re.Pattern]:
    """The names the config's CheckpointHook saves periodic checkpoints under, as patterns
    capturing the step: its `filename_tmpl`, or mmengine's defaults."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    templates = ([hook['filename_tmpl']] if hook.get('filename_tmpl') else
                 ['epoch_{}.pth', 'iter_{}.pth'])
    return [pattern for pattern in map(checkpoint_name_pattern, templates) if pattern]


def _step_of(name: str, patterns: List[re.Pattern],
             prefixed: bool = False) -> Optional[Tuple[int, int]]:
    """(which pattern, step) of a checkpoint name, or None. `prefixed`: also find it at the end
    of a longer name, as in mmengine's best checkpoints (`best_acc_epoch_3.pth`)."""
    for index, pattern in enumerate(patterns):
        match = pattern.search(name) if prefixed else pattern.fullmatch(name)
        if match:
            return index, int(match.group(1))
    return None


def _periodic_checkpoints(cfg: Config, work_dir: str) -> Dict[str, Tuple[int, int]]:
    """{name: (which pattern, step)} of the periodic checkpoints in work_dir."""
    patterns = _name_patterns(cfg)
    names = os.listdir(work_dir) if osp.isdir(work_dir) else []
    return {name: step for name in names if (step := _step_of(name, patterns)) is not None}


def _refuse_to_resume_over_checkpoints(cfg: Config, checkpoint: str,
                                       steps: Dict[str, Tuple[int, int]]) -> None:
    """See `refuse_to_overwrite_a_run`; `steps` are work_dir's periodic checkpoints."""
    work_dir = cfg.work_dir
    step = _step_of(osp.basename(checkpoint), _name_patterns(cfg), prefixed=True)
    same_run = (step is not None and osp.isfile(checkpoint) and osp.isdir(work_dir)
                and osp.samefile(osp.dirname(osp.abspath(checkpoint)), work_dir))
    over = sorted((name for name, (kind, number) in steps.items()
                   if not same_run or kind != step[0] or number > step[1]), key=steps.get)
    if over:
        shown = ', '.join(over[:4]) + (f', ... {over[-1]}' if len(over) > 4 else '')
        where = ('later checkpoints of the same run' if same_run else
                 'the checkpoints of another run')
        raise FileExistsError(
            f'--resume {checkpoint}: the resumed run would save its checkpoints in {work_dir} '
            f'and overwrite {where} there ({shown}). Resume from the latest '
            f'(--resume {osp.join(work_dir, over[-1])}), give the resumed run another '
            f'--work-dir, or pass --force to train over them.')


def _unlike_an_mmengine_dump(path: str) -> Optional[str]:
    """None if `path` is a config the Runner dumped (it reads back to its own text, in its own
    format: .py, .json or .yaml), so rewriting it loses nothing; otherwise why it is not."""
    try:
        with open(path, encoding='utf-8') as file:
            text = file.read()
        if Config.fromfile(path).dump() == text:
            return None
        return 'its text is not what mmengine writes for it'
    except Exception as error:  # notes, a folder, a broken config, a plugin no longer importable
        return f'it does not read back as a config: {type(error).__name__}: {error}'


def check_work_dir(config: str, work_dir: str) -> None:
    """Refuse a work_dir that cannot be written (a file, or a folder under one, say), and, since
    the Runner writes the merged config to `<work_dir>/<config file name>`, one that holds
    anything but a config the Runner wrote under that name (the user's config itself, or another
    file of theirs)."""
    check_writable_folder(work_dir, f'--work-dir {work_dir}')
    dump = osp.join(work_dir, osp.basename(config))
    why = _unlike_an_mmengine_dump(dump) if osp.lexists(dump) else None
    if why is None:
        return
    if osp.isfile(dump) and osp.samefile(dump, config):
        raise FileExistsError(
            f'{config} lies in the work dir {work_dir}, where mmengine writes the merged config '
            f'under the same name, which would replace your file. Keep the config outside the '
            f'work dir, or give another --work-dir.')
    raise FileExistsError(
        f'{dump} does not look like a config mmengine wrote ({why}), and mmengine would replace '
        f'it with the merged config {osp.basename(config)}. Move it out of the work dir, or give '
        f'another --work-dir.')


def enable_amp(cfg: Config) -> None:
    """`--amp`: mixed precision with a dynamic loss scale, unless the config already has it."""
    optim_wrapper = cfg.optim_wrapper
    if optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        print_log('AMP is already enabled in the config.', logger='current')
        return
    if optim_wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
        raise ValueError(f"--amp needs optim_wrapper type 'OptimWrapper', got "
                         f"{optim_wrapper['type']!r}; set AMP in the config instead.")
    optim_wrapper.type = 'AmpOptimWrapper'
    optim_wrapper.loss_scale = 'dynamic'


def enable_auto_scale_lr(cfg: Config) -> None:
    """`--auto-scale-lr`: scale the lr by (GPUs x batch per GPU) / auto_scale_lr.base_batch_size."""
    if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
        raise ValueError('--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=N) in the '
                         'config: the total batch size its lr was tuned for.')
    cfg.auto_scale_lr.enable = True


def _replace_sync_bn(node: Any) -> int:
    """Turn every SyncBN layer config under `node` into BN; return how many."""
    count = 0
    if isinstance(node, dict):
        if node.get('type') in ('SyncBN', 'MMSyncBN'):
            node['type'] = 'BN'
            count += 1
        for value in node.values():
            count += _replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += _replace_sync_bn(value)
    return count


def adapt_to_machine(cfg: Config) -> None:
    """Make a GPU recipe runnable on a machine without an accelerator (slower, in fp32).

    - AMP (`AmpOptimWrapper`) needs an accelerator: fall back to fp32 with a warning.
    - `launcher='pytorch'` (tools/dist_train.sh): mmengine's `init_dist` calls
      `torch.cuda.set_device` unconditionally, so start the gloo process group here (the Runner
      then skips `init_dist`), give DDP `device_ids=None` as a CPU module needs, and use BN for
      SyncBN, whose kernels are GPU-only.
    Call it after all command-line changes to `cfg` and before building the Runner.
    """
    if get_device() != 'cpu':
        return
    optim_wrapper = cfg.get('optim_wrapper')
    if optim_wrapper is not None and optim_wrapper.get('type') == 'AmpOptimWrapper':
        optim_wrapper.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            optim_wrapper.pop(key, None)
        print_log('No GPU: training in fp32 instead of mixed precision (AmpOptimWrapper).',
                  logger='current', level=logging.WARNING)
    if cfg.get('launcher', 'none') != 'pytorch':
        return
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        # The Runner's defaults for DDP, but device_ids=None: the module lives on the CPU.
        wrapper.setdefault('broadcast_buffers', False)
        wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
        wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    replaced = _replace_sync_bn(cfg.model)
    if replaced:
        print_log(f'No GPU: {replaced} SyncBN layer configs use BN instead (per-process '
                  f'statistics).', logger='current', level=logging.WARNING)


def end_process_group() -> None:
    """End the process group of a run that ended well, while Python is fully alive. gloo's worker
    threads free each finished collective, which needs the GIL for its tensors; one still doing so
    when the interpreter finalises aborts the rank after its work is done ('terminate called
    without an active exception', SIGABRT; seen after the evaluator's last broadcast, cf.
    pytorch/pytorch#179291). The barrier waits for every rank's pending collectives, with the GIL
    released, so the workers finish theirs first. Not after an error: a rank still waiting in a
    collective would hang here."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def build_runner(cfg: Config) -> Runner:
    """The config's own runner type if it names one, else mmengine's `Runner`."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def set_local_rank(local_rank: int) -> None:
    """`torch.distributed.launch` passes `--local-rank`; torchrun sets LOCAL_RANK itself."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))
