"""How N processes split one video: CFG-parallel x ring x Ulysses, chosen and checked before loading.

The ranks form a row-major mesh of shape ``(cfg, ring, ulysses)`` (the order ``init_device_mesh``
numbers them in). Ranks that share a CFG index run the same guidance branch and split the token
sequence between them (diffusers' context parallelism over the ``ring`` x ``ulysses`` sub-mesh);
ranks that share their ring and Ulysses coordinates hold the same tokens of the two branches and
exchange their velocities once per step. On 8 ranks, CFG 2 x Ulysses 4: ranks 0-3 compute the
positive branch, 4-7 the negative one, and rank r pairs with rank r +/- 4.

Every check here raises :class:`pusa.errors.InputError` naming the option and the allowed values,
so a bad degree is a usage error (exit 2) before any weight is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from pusa.errors import InputError


@dataclass(frozen=True)
class Degrees:
    """The parallel degrees of one run; their product is the number of ranks."""

    cfg: int = 1
    ring: int = 1
    ulysses: int = 1

    @property
    def world(self) -> int:
        return self.cfg * self.ring * self.ulysses

    @property
    def context(self) -> int:
        """Ranks that split one branch's token sequence (ring x Ulysses)."""
        return self.ring * self.ulysses

    def coordinates(self, rank: int) -> tuple[int, int, int]:
        """``(cfg, ring, ulysses)`` indices of ``rank`` in the row-major mesh."""
        if not 0 <= rank < self.world:
            raise ValueError(f"rank {rank} is outside a world of {self.world}")
        return rank // self.context, (rank // self.ulysses) % self.ring, rank % self.ulysses

    def branch(self, rank: int) -> str:
        """Which guidance branch ``rank`` computes: ``positive``, ``negative`` or ``both`` (no CFG-parallel)."""
        if self.cfg == 1:
            return "both"
        return "positive" if self.coordinates(rank)[0] == 0 else "negative"

    def context_group(self, rank: int) -> list[int]:
        """The ranks that split the tokens of ``rank``'s branch (its context-parallel group)."""
        first = self.coordinates(rank)[0] * self.context
        return list(range(first, first + self.context))

    def cfg_group(self, rank: int) -> list[int]:
        """The ranks holding the same tokens of every branch (one all-gather per step among them)."""
        offset = rank % self.context
        return [c * self.context + offset for c in range(self.cfg)]

    def describe(self) -> str:
        parts = [f"CFG-parallel {self.cfg}"] if self.cfg > 1 else []
        parts += [f"ring {self.ring}"] if self.ring > 1 else []
        parts += [f"Ulysses {self.ulysses}"] if self.ulysses > 1 or not parts else []
        return f"{' x '.join(parts)} ({self.world} rank{'s' if self.world != 1 else ''})"


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _check_choice(name: str, value: int | None, low: int = 1, allowed: tuple[int, ...] | None = None) -> None:
    if value is None:
        return
    if allowed is not None and value not in allowed:
        raise InputError(f"{name}: {value} is not allowed; expected one of {', '.join(map(str, allowed))}")
    if value < low:
        raise InputError(f"{name}: {value} is not allowed; expected a whole number of at least {low}")


def resolve_degrees(nproc: int, heads: int, cfg_scale: float, *, ulysses: int | None = None,
                    ring: int | None = None, cfg_parallel: int | None = None,
                    ring_supported: bool = True) -> Degrees:
    """The degrees for ``nproc`` ranks, from the options the user gave (``None``: not given).

    With none given: CFG-parallel 2 when guidance is on (``cfg_scale > 1``) and ``nproc`` is even,
    every other factor in Ulysses. Given ones must multiply to ``nproc``; a missing one takes what
    is left. Ulysses must divide the model's ``heads`` (each rank attends over whole heads); ring
    attention needs a backend that returns the log-sum-exp (``ring_supported``).
    """
    _check_choice("nproc", nproc)
    _check_choice("cfg-parallel", cfg_parallel, allowed=(1, 2))
    _check_choice("ring-degree", ring)
    _check_choice("ulysses-degree", ulysses)
    guided = cfg_scale > 1.0
    if cfg_parallel == 2 and not guided:
        raise InputError("cfg-parallel: 2 needs guidance (a --cfg above 1: two branches to split); use "
                         "--cfg-parallel 1, or leave it out")
    ring_n = ring or 1
    if cfg_parallel is None:
        rest = nproc // (ring_n * (ulysses or 1)) if nproc % (ring_n * (ulysses or 1)) == 0 else 0
        cfg_parallel = 2 if guided and rest % 2 == 0 and rest > 0 else 1
    if ulysses is None:
        if nproc % (cfg_parallel * ring_n):
            raise InputError(f"nproc: {nproc} ranks cannot be split as CFG-parallel {cfg_parallel} x ring {ring_n} "
                             f"x a whole Ulysses degree; choose --nproc as a multiple of {cfg_parallel * ring_n}")
        ulysses = nproc // (cfg_parallel * ring_n)
    degrees = Degrees(cfg=cfg_parallel, ring=ring_n, ulysses=ulysses)
    if degrees.world != nproc:
        raise InputError(f"nproc: --ulysses-degree {ulysses} x --ring-degree {ring_n} x --cfg-parallel {cfg_parallel} "
                         f"= {degrees.world}, but --nproc is {nproc}; their product must equal the number of ranks")
    if heads % ulysses:
        allowed = ", ".join(map(str, divisors(heads)))
        raise InputError(f"ulysses-degree: {ulysses} does not divide the model's {heads} attention heads; "
                         f"allowed: {allowed}")
    if ring_n > 1 and not ring_supported:
        raise InputError(f"ring-degree: {ring_n} needs an attention backend that returns the log-sum-exp "
                         "(cuDNN or flash attention on CUDA); this machine has none, so use --ulysses-degree "
                         "and --cfg-parallel instead (ring-degree 1)")
    return degrees


def check_tokens(degrees: Degrees, tokens_per_frame: int, size: str = "") -> None:
    """Context parallelism splits the tokens evenly and whole frames' timesteps with them: the
    context degree must divide the tokens of one latent frame ((W/16) x (H/16) for Wan)."""
    if degrees.context > 1 and tokens_per_frame % degrees.context:
        raise InputError(f"size: {size + ' gives ' if size else ''}{tokens_per_frame} tokens per latent frame, which "
                         f"the context-parallel degree {degrees.context} (ring x Ulysses) does not divide; choose a "
                         f"size whose token count per frame is a multiple of {degrees.context}")
