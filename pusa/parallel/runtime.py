"""One rank's setup: the process group (with a timeout), its device, its groups, and the hooks a
loaded pipeline calls (text shared from rank 0, the parallel velocity model, decode on rank 0).

Started by the CLI or the service in a process launched by ``torch.distributed.run`` (``torchrun``),
which sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous address in the environment.

Waiting on another rank is always bounded: every collective of the default group and of the control
group carries ``timeout`` (gloo raises when it passes; NCCL's watchdog aborts the process), and a
watchdog thread ends a rank whose launcher died (a rank would otherwise sit in a collective until
the timeout). torchrun itself stops every rank as soon as one fails.

diffusers' ``_resolve_parallel_config`` picks ``rank % torch.accelerator.device_count()`` as the
device, and that count is 0 on a machine without an accelerator; :func:`cpu_device_count` makes it
1 for the duration of ``enable_parallelism`` only, and only where it is 0 (gloo on CPU).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Iterator

import torch
import torch.distributed as dist

from pusa.errors import InputError, PusaError
from pusa.parallel.degrees import Degrees, check_tokens

if TYPE_CHECKING:
    from pusa.parallel.velocity import ParallelVelocity
    from pusa.pipeline import PusaPipeline
    from pusa.settings import GenerationSettings

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600.0  # longest one rank waits for another (loading skew included)


class RankLost(PusaError):
    """Another rank stopped answering (it died, hangs, or the timeout passed): this run cannot go on."""


_COMM_MARKERS = ("gloo", "nccl", "connection closed", "connection reset", "timed out", "timeout", "broken pipe")


@contextlib.contextmanager
def collective(what: str, timeout_s: float) -> Iterator[None]:
    """Say plainly that a wait on the other ranks failed (instead of a transport's traceback line)."""
    try:
        yield
    except RuntimeError as e:  # torch.distributed.DistError and plain transport RuntimeErrors
        text = str(e)
        if not isinstance(e, dist.DistError) and not any(m in text.lower() for m in _COMM_MARKERS):
            raise
        rank = os.environ.get("RANK", "?")
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        raise RankLost(f"rank {rank}: lost the other ranks during {what}: one died or gave no answer within "
                       f"{timeout_s:g} s (--rank-timeout); {first}") from e


def launched_by_torchrun() -> bool:
    """True in a process started by ``torch.distributed.run`` with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ and "MASTER_ADDR" in os.environ


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


@contextlib.contextmanager
def cpu_device_count() -> Iterator[None]:
    """``torch.accelerator.device_count()`` reads 1 instead of 0 inside the block (CPU ranks only).

    diffusers divides the rank by that count to name a device; on CPU every rank's device is
    ``cpu`` anyway. Scoped to our ``enable_parallelism`` calls and restored on exit, so nothing
    outside them sees it.
    """
    original = torch.accelerator.device_count
    if original() > 0:
        yield
        return
    torch.accelerator.device_count = lambda: 1  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.accelerator.device_count = original  # type: ignore[assignment]


def ring_supported(device_type: str) -> bool:
    """Ring attention needs the log-sum-exp of each partial attention: cuDNN/flash on CUDA, none on CPU."""
    return device_type == "cuda"


def rank_device(requested: str) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` where CUDA is (``auto`` or ``cuda``), else ``cpu``."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if requested not in ("auto", "cuda", "cpu"):
        raise InputError(f"device: {requested!r} is not allowed with several ranks; expected auto, cuda or cpu "
                         "(each rank takes the GPU of its local rank)")
    if requested == "cpu" or not torch.cuda.is_available():
        if requested == "cuda":
            raise InputError("device: cuda was asked for but no CUDA GPU is available; use --device cpu")
        return torch.device("cpu")
    if local >= torch.cuda.device_count():
        raise InputError(f"nproc: local rank {local} has no GPU; this machine has {torch.cuda.device_count()}")
    return torch.device("cuda", local)


class ParentWatchdog:
    """Ends this rank when its launcher dies (its parent process changes), so no rank outlives a run.

    torchrun stops the ranks itself when one fails; this covers the launcher being killed outright.
    """

    def __init__(self, interval_s: float = 1.0):
        self.parent = os.getppid()
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pusa-rank-watchdog", daemon=True)

    def start(self) -> "ParentWatchdog":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if os.getppid() != self.parent:
                log.error("rank %s: the launcher (pid %d) is gone; ending this rank", os.environ.get("RANK"),
                          self.parent)
                os._exit(1)


class RankGroup:
    """This process among the ranks of one run; attach it to a loaded pipeline with :meth:`attach`."""

    def __init__(self, degrees: Degrees, device: torch.device, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.degrees = degrees
        self.device = device
        self.timeout_s = timeout_s
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        if self.world != degrees.world:
            raise InputError(f"nproc: the degrees ({degrees.describe()}) need {degrees.world} ranks but "
                             f"{self.world} were started")
        timeout = timedelta(seconds=timeout_s)
        from torch.distributed.device_mesh import init_device_mesh

        self.mesh = init_device_mesh(device.type, (degrees.cfg, degrees.ring, degrees.ulysses),
                                     mesh_dim_names=("cfg", "ring", "ulysses"))
        self.cfg_group = self.mesh.get_group("cfg") if degrees.cfg > 1 else None
        # Control messages (jobs, cancel, heartbeats) go over gloo on the CPU whatever the device.
        self.control = dist.new_group(backend="gloo", timeout=timeout) if device.type != "cpu" else dist.group.WORLD
        self.watchdog: ParentWatchdog | None = None

    @classmethod
    def start(cls, degrees: Degrees, device: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S,
              watch_parent: bool = True) -> "RankGroup":
        """Join the run's process group (rendezvous from torchrun's environment) and build the mesh."""
        dev = rank_device(device)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            backend = "cpu:gloo,cuda:nccl" if dev.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s),
                                    device_id=dev if dev.type == "cuda" else None)
        group = cls(degrees, dev, timeout_s)
        if watch_parent:
            group.watchdog = ParentWatchdog().start()
        return group

    # ------------------------------------------------------------------ who am I

    @property
    def is_main(self) -> bool:
        """Rank 0: encodes the text, decodes, writes files and prints."""
        return self.rank == 0

    @property
    def decodes(self) -> bool:
        return self.is_main

    @property
    def branch(self) -> str:
        return self.degrees.branch(self.rank)

    def load_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``from_pretrained`` keywords for this rank: its own device; only rank 0 loads the text encoder."""
        return {**kwargs, "device": str(self.device), "with_text_encoder": self.is_main}

    # ------------------------------------------------------------------ the pipeline's hooks

    def attach(self, pipe: "PusaPipeline") -> "PusaPipeline":
        """Split each DiT's attention over the context-parallel sub-mesh and route the pipeline's
        text encoding, velocity model and decode through this group."""
        if self.degrees.context > 1:
            from diffusers import ContextParallelConfig

            if self.degrees.ring > 1:
                _ring_backend(pipe)
            for dit in pipe.transformers:
                config = ContextParallelConfig(ring_degree=self.degrees.ring, ulysses_degree=self.degrees.ulysses,
                                               mesh=self.mesh["ring", "ulysses"])
                with cpu_device_count():
                    dit.enable_parallelism(config=config)
        pipe.parallel = self
        return pipe

    def encode_text(self, pipe: "PusaPipeline", prompts: list[str]) -> torch.Tensor:
        """Rank 0 encodes the prompts; every rank receives the same embeddings (one broadcast)."""
        from pusa.text import encode_prompts

        dim = int(pipe.transformers[0].config.text_dim)
        comm = self.device if self.device.type == "cuda" else torch.device("cpu")
        if self.is_main:
            emb, _ = encode_prompts(pipe.tokenizer, pipe.text_encoder, prompts, pipe.family.text_len, pipe.text_device)
            emb = emb.to(comm, torch.float32).contiguous()
        else:
            emb = torch.empty((len(prompts), pipe.family.text_len, dim), dtype=torch.float32, device=comm)
        with collective("the text broadcast", self.timeout_s):
            dist.broadcast(emb, src=0)
        return emb.to(pipe.device, pipe.dtype)

    def velocity_model(self, pipe: "PusaPipeline", context: torch.Tensor, negative: torch.Tensor | None,
                       cfg: float, latent_hw: tuple[int, int]) -> "ParallelVelocity":
        from pusa.parallel.velocity import ParallelVelocity

        check_tokens(self.degrees, pipe.family.tokens_per_frame(*latent_hw),
                     f"{latent_hw[1] * pipe.family.spatial_stride}x{latent_hw[0] * pipe.family.spatial_stride}")
        return ParallelVelocity(pipe, self, context, negative, cfg, latent_hw)

    # ------------------------------------------------------------------ control

    def broadcast_object(self, obj: Any = None) -> Any:
        """``obj`` from rank 0 to every rank (over the control group, bounded by the timeout)."""
        box = [obj if self.is_main else None]
        with collective("a broadcast from rank 0", self.timeout_s):
            dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def all_agree(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank (e.g. a cancel seen by one)."""
        t = torch.tensor([1 if flag else 0], dtype=torch.int64)
        with collective("the cancel check", self.timeout_s):
            dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return bool(t.item())

    def same_seed(self, settings: "GenerationSettings") -> "GenerationSettings":
        """``settings`` with rank 0's seed on every rank (an omitted seed is drawn once, on rank 0)."""
        seed = settings.seed
        if self.is_main and seed is None:
            seed = secrets.randbelow(2**32)
        return settings.model_copy(update={"seed": self.broadcast_object(seed)})

    def barrier(self) -> None:
        with collective("the wait for every rank", self.timeout_s):
            dist.barrier(group=self.control)

    def close(self) -> None:
        """Leave the process group (local on gloo: the other ranks may still be working)."""
        if self.watchdog is not None:
            self.watchdog.stop()
        if dist.is_initialized():
            dist.destroy_process_group()


def _ring_backend(pipe: "PusaPipeline") -> None:
    """Ring attention merges partial attentions by their log-sum-exp; diffusers' native (SDPA)
    backend does not return it, cuDNN's does (bf16/fp16 on CUDA)."""
    if pipe.device.type != "cuda" or pipe.dtype not in (torch.bfloat16, torch.float16):
        raise InputError("ring-degree: ring attention needs CUDA with --dtype bf16 or fp16 (cuDNN attention)")
    for dit in pipe.transformers:
        chosen = getattr(getattr(dit.blocks[0].attn1, "processor", None), "_attention_backend", None)
        if chosen in (None, "native"):  # a backend the user chose (flash, ...) stays; diffusers checks it
            dit.set_attention_backend("_native_cudnn")


def pseudo_frames(frames: int, context: int) -> int:
    """How many equal runs to cut each latent frame into so the ``frames * k`` timestep rows split
    evenly over ``context`` ranks (each rank then holds whole runs and their timesteps)."""
    return context // math.gcd(frames, context)
