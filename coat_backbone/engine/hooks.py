"""Hooks that make long detection and segmentation runs safe to interrupt and resume, and keep
tools/test.py from evaluating a checkpoint that does not fit the model (`check_checkpoint_fits`,
which tools/demo.py uses too).

All are registered in mmengine's root `HOOKS` registry, so mmdet and mmseg configs find them
without a scope prefix once `coat_backbone` is imported (`custom_imports`).
"""
import os
import os.path as osp
import re
from collections import deque
from typing import Dict, List, Optional

import torch
from mmengine.dist import all_reduce, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop

from ..checkpoint import CheckpointError

PARTIAL_SUFFIX = '.partial'


def _fsync_dir(path: str) -> None:
    """Persist a directory entry (a rename or a new file) across an OS crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    with open(path, 'rb') as file:
        os.fsync(file.fileno())


def checkpoint_name_pattern(filename_tmpl: str) -> Optional[re.Pattern]:
    """`CheckpointHook`'s `filename_tmpl` (`'epoch_{}.pth'`) as a pattern whose group is the
    step; None for a template without one, which saves every checkpoint under one name."""
    parts = re.split(r'\{[^{}]*\}', filename_tmpl, maxsplit=1)
    if len(parts) != 2:
        return None
    return re.compile(re.escape(parts[0]) + r'(\d+)' + re.escape(parts[1]) + '$')


def write_text_atomically(path: str, text: str) -> None:
    """Replace `path` by `text` so that readers see the old or the new content, never a mix."""
    partial = path + PARTIAL_SUFFIX
    with open(partial, 'w', encoding='utf-8') as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    _fsync_dir(osp.dirname(osp.abspath(path)))


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """`CheckpointHook` whose checkpoints appear whole or not at all.

    mmengine 0.10 writes `epoch_N.pth` in place, then rewrites `last_checkpoint` in place, and,
    with `max_keep_ckpts`, deletes the oldest kept checkpoint *before* writing the new one. A kill
    or crash at the wrong moment can therefore leave a truncated `epoch_N.pth` under its final
    name, an empty `last_checkpoint` (resume then fails), or, with `max_keep_ckpts=1`, a
    `last_checkpoint` naming a file already deleted; after an OS crash, unsynced data can leave
    `last_checkpoint` naming an empty file. This hook writes to `<name>.partial`, syncs it to disk,
    renames it into place (atomic on POSIX), updates `last_checkpoint` the same way, and prunes old
    checkpoints only afterwards. Its own left-over `.partial` files are removed when training
    starts, and a run resumed from another work_dir leaves that run's best checkpoint alone.
    Covered: the periodic and last checkpoints, which resuming uses; `save_best` files keep
    mmengine's writing, and so do remote `out_dir`s (non-local backends), where renames are not
    atomic. Arguments are `CheckpointHook`'s.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        # A run resumed from another work_dir's checkpoint inherits that run's best checkpoint,
        # which mmengine deletes once this run scores better: not this run's file to delete.
        if getattr(self, 'best_ckpt_path', None) and not self._is_own(self.best_ckpt_path):
            self.best_ckpt_path = None
        for key, path in getattr(self, 'best_ckpt_path_dict', {}).items():
            if path and not self._is_own(path):
                self.best_ckpt_path_dict[key] = None
        if not (is_main_process() and isinstance(self.file_backend, LocalBackend)):
            return
        for path in self._unfinished_files(runner.work_dir):
            os.remove(path)
            print_log(f'Removed {path}, left unfinished by an interrupted run.', logger='current')

    def _is_own(self, path: str) -> bool:
        return osp.realpath(osp.dirname(path)) == osp.realpath(self.out_dir)

    def _unfinished_files(self, work_dir: str) -> List[str]:
        """The `.partial` files this hook writes (`<filename_tmpl with a step>.partial` in
        out_dir, `last_checkpoint.partial` in work_dir); any other `.partial` is not ours."""
        found = [path for path in [osp.join(work_dir, 'last_checkpoint' + PARTIAL_SUFFIX)]
                 if osp.isfile(path)]
        pattern = checkpoint_name_pattern(self.filename_tmpl)
        if pattern is not None and osp.isdir(self.out_dir):
            found += [osp.join(self.out_dir, name) for name in sorted(os.listdir(self.out_dir))
                      if name.endswith(PARTIAL_SUFFIX)
                      and pattern.fullmatch(name[:-len(PARTIAL_SUFFIX)])]
        return found

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        if not isinstance(self.file_backend, LocalBackend):
            super()._save_checkpoint_with_step(runner, step, meta)
            return
        stale = self._update_kept_ids(runner, step)
        filename = self.filename_tmpl.format(step)
        path = osp.join(self.out_dir, filename)
        # Recorded before saving, as mmengine does, so the checkpoint's message hub names itself.
        self.last_ckpt = path
        runner.message_hub.update_info('last_ckpt', path)
        runner.save_checkpoint(  # writes on the main process only
            self.out_dir,
            filename + PARTIAL_SUFFIX,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        partial = path + PARTIAL_SUFFIX
        _fsync_file(partial)
        os.replace(partial, path)
        _fsync_dir(self.out_dir)
        write_text_atomically(osp.join(runner.work_dir, 'last_checkpoint'), path)
        for old_step in stale:
            old_path = osp.join(self.out_dir, self.filename_tmpl.format(old_step))
            if osp.isfile(old_path):
                os.remove(old_path)

    def _update_kept_ids(self, runner, step: int) -> List[int]:
        """Add `step` to the kept checkpoints; return the steps that fall out of `max_keep_ckpts`
        (deleted by the caller once the new checkpoint is safely in place)."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return []
        steps = list(self.keep_ckpt_ids) + [step]
        self.keep_ckpt_ids = deque(steps[-self.max_keep_ckpts:], self.max_keep_ckpts)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        return steps[:-self.max_keep_ckpts]


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training at the first iteration whose loss is NaN or infinite, naming it.

    Unlike mmdet's `CheckInvalidLossHook` (an `assert`, every 50 iterations by default, mmdet only)
    this checks every iteration, raises `NonFiniteLossError` with the iteration and the offending
    loss terms, and agrees across processes (one all-reduce of a flag) so that every rank stops
    together instead of the others hanging in the next gradient all-reduce. It runs before the
    checkpoint hook, so weights updated by the bad step are never saved.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[Dict[str, torch.Tensor]] = None) -> None:
        losses = {name: torch.as_tensor(value).detach()
                  for name, value in (outputs or {}).items() if 'loss' in name}
        bad = {name: value for name, value in losses.items() if not torch.isfinite(value).all()}
        all_finite = torch.tensor(0.0 if bad else 1.0)
        all_reduce(all_finite, op='min')
        if all_finite.item() == 1.0:
            return
        where = f'iteration {runner.iter + 1}'
        if isinstance(runner.train_loop, EpochBasedTrainLoop):  # else batch_idx is the iteration
            where += f' (epoch {runner.epoch + 1}, batch {batch_idx + 1} of the epoch)'
        if bad:
            terms = ', '.join(f'{name}={value.float().mean().item()}'
                              for name, value in bad.items())
            what = f'Non-finite loss at {where}: {terms}.'
        else:
            what = f'Non-finite loss in another process at {where}.'
        last = runner.message_hub.get_info('last_ckpt')
        resume = (f'Resume from the last checkpoint ({last}) with --resume' if last else
                  'Restart')
        raise NonFiniteLossError(
            f'{what} Training stopped; this step updated the weights, so they were not saved. '
            f'{resume} after lowering the learning rate or enabling gradient clipping '
            f'(optim_wrapper.clip_grad=dict(max_norm=...)), and check the data of this batch.')


def check_checkpoint_fits(model: torch.nn.Module, checkpoint: dict, source: str) -> None:
    """Raise `CheckpointError` when `checkpoint` (as read from `source`) lacks weights of `model`
    or holds them in other shapes, which mmengine's non-strict loading would let through."""
    expected = model.state_dict()
    # The key revision mmengine applies when it loads: DataParallel's `module.` prefix.
    found = {re.sub(r'^module\.', '', key): value
             for key, value in checkpoint.get('state_dict', checkpoint).items()}
    missing = [key for key in expected if key not in found]
    if missing:
        raise CheckpointError(
            f'{source} lacks {len(missing)} of the {len(expected)} weights of this config\'s '
            f'model ({", ".join(missing[:4])}, ...). Use a checkpoint trained with this config. '
            f'ImageNet and backbone files only initialise a detector\'s or segmentor\'s training '
            f'(init_cfg=dict(type=\'Pretrained\', checkpoint=...)); tools/eval_cls.py evaluates '
            f'official, timm and converted classifier files on ImageNet.')
    reshaped = [f'{key}: checkpoint {tuple(found[key].shape)} vs model {tuple(value.shape)}'
                for key, value in expected.items()
                if getattr(found[key], 'shape', value.shape) != value.shape]
    if reshaped:
        raise CheckpointError(
            f'{source} holds {len(reshaped)} weights in other shapes than this config\'s model '
            f'({"; ".join(reshaped[:3])}, ...): it was trained with another config (another '
            f'number of classes?). Use it with that config.')


@HOOKS.register_module()
class CheckpointFitsModelHook(Hook):
    """Stop before a checkpoint that lacks weights of the model, or has them in other shapes,
    goes into it.

    mmengine loads `load_from` non-strictly, so an ImageNet or backbone-only file, or one trained
    for another number of classes, would be evaluated with randomly initialised heads. This checks
    the checkpoint mmengine has just read (no second read), before any other hook uses it.
    """

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        check_checkpoint_fits(model, checkpoint, runner.cfg.get('load_from'))
