"""
What a resumed run needs to continue exactly where a killed one stopped: the position of the
training sampler and the states of the random generators (``docs/training.md``, "Resume";
``docs/failure_behaviour.md``).

Detectron2 restores the model, optimizer, scheduler and iteration on ``--resume``, but restarts the
sampler from its first index and leaves the random generators (data augmentation, ROI sampling)
as seeded at start-up. With :class:`ResumableSampler` and :class:`RandomStates` (and, in a
multi-process run, :class:`GatherRandomStates`, which puts every process's generators into the
checkpoint), a run with ``DATALOADER.NUM_WORKERS 0`` and ``DATALOADER.ASPECT_RATIO_GROUPING False``
resumed from its checkpoint of iteration i trains exactly as the uninterrupted run from i + 1.
"""

import itertools
import logging
import random

import numpy as np
import torch
from detectron2.data import build_detection_train_loader
from detectron2.engine import HookBase
from detectron2.utils import comm
from torch.utils.data import Sampler

logger = logging.getLogger(__name__)


class ResumableSampler(Sampler):
    """
    An infinite training sampler (e.g. Detectron2's ``TrainingSampler``) that starts after the
    indices of the first ``start_iter`` iterations, ``indices_per_iter`` indices each (the batch
    of this process). Set ``start_iter`` before the data loader's iterator is created.
    """

    def __init__(self, sampler: Sampler, indices_per_iter: int):
        self.sampler = sampler
        self.indices_per_iter = indices_per_iter
        self.start_iter = 0

    def __iter__(self):
        yield from itertools.islice(self.sampler, self.start_iter * self.indices_per_iter, None)


def build_resumable_train_loader(cfg) -> tuple[ResumableSampler, torch.utils.data.DataLoader]:
    """
    Detectron2's train loader of ``cfg`` with its sampler wrapped in a :class:`ResumableSampler`,
    and with its own random generator (seeded by ``cfg.SEED``), so that creating its iterator
    draws nothing from the global one.
    """
    kwargs = build_detection_train_loader.from_config(cfg)
    per_process = cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size()
    sampler = ResumableSampler(kwargs.pop("sampler"), indices_per_iter=per_process)
    loader = build_detection_train_loader(sampler=sampler, **kwargs)
    loader.generator = torch.Generator().manual_seed(max(cfg.SEED, 0))
    return sampler, loader


def _local_states() -> dict:
    """This process's generators of Python, NumPy and torch (CPU and CUDA), as tensors and numbers."""
    version, python_state, gauss = random.getstate()
    name, keys, position, has_gauss, cached_gauss = np.random.get_state()
    state = {
        "python": [version, torch.tensor(python_state, dtype=torch.int64), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss],
        "numpy_gauss": cached_gauss,
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _load_local_states(state: dict) -> None:
    version, python_state, gauss = state["python"]
    random.setstate((version, tuple(python_state.tolist()), gauss))
    name, keys, position, has_gauss = state["numpy"]
    np.random.set_state(
        (name, keys.numpy().astype(np.uint32), position, has_gauss, state["numpy_gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RandomStates:
    """
    A checkpointable (``state_dict``/``load_state_dict``) of the global random generators of
    Python, NumPy and torch (CPU and CUDA), as tensors and numbers only, so that checkpoints stay
    loadable with ``torch.load(..., weights_only=True)``.

    Single process: the state dict is this process's generators. Several processes: only the main
    process saves checkpoints, so every process's generators are first collected by
    :meth:`gather` (a collective, run by :class:`GatherRandomStates` just before each save) and the
    state dict is ``{"ranks": [state of rank 0, rank 1, ...]}``; each process restores its own.
    A checkpoint of another number of processes restores none (the start-up seeds stay).
    """

    def __init__(self):
        self._ranks = None

    def gather(self) -> None:
        """Collect every process's generators (all processes must call it together)."""
        self._ranks = comm.all_gather(_local_states())

    def state_dict(self) -> dict:
        if comm.get_world_size() > 1 and self._ranks is not None:
            return {"ranks": self._ranks}
        return _local_states()

    def load_state_dict(self, state: dict) -> None:
        world_size = comm.get_world_size()
        saved_size = len(state["ranks"]) if "ranks" in state else 1
        if saved_size != world_size:
            logger.info(
                f"The checkpoint holds the random generators of {saved_size} process(es), the run"
                f" has {world_size}: they keep their start-up seeds (the resume is not exact)."
            )
            return
        _load_local_states(state["ranks"][comm.get_rank()] if "ranks" in state else state)


class GatherRandomStates(HookBase):
    """
    In a multi-process run, gathers every process's generators into ``random_states`` after the
    iterations whose checkpoint the main process saves (Detectron2's periodic checkpointer: every
    ``period`` iterations and the last one). Put it before the checkpointer hook. One all-gather
    of a few KB per process and checkpoint.
    """

    def __init__(self, random_states: RandomStates, period: int):
        self.random_states = random_states
        self.period = period

    def after_step(self):
        iteration = self.trainer.iter
        last = iteration >= self.trainer.max_iter - 1
        if comm.get_world_size() > 1 and ((iteration + 1) % self.period == 0 or last):
            self.random_states.gather()
