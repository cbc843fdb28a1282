"""A critic's training state on disk, so that a stopped run goes on from where it stopped.

``train_critic(checkpoint=PATH)`` writes the whole state of its loop every
``checkpoint_seconds`` and at the last step: the step reached, the critic's parameters and
buffers, the optimisers' and learning-rate schedules' states, the numpy generator of the
minibatches and the torch generator of the penalty's interpolates, the fixed evaluation
sets, the history so far and the seconds spent — with a key, the run's settings. A run
given the same path and the same settings reads it back and trains from the step after,
so what it returns is the critic an uninterrupted run returns, bit for bit on the same
machine (the data are not in the key beyond their dimension: give the same ones). A state
at the last step returns the trained critic at once.

The file is written whole or not at all (:func:`otdiv._files.replaced`) and read with
``weights_only=True``: tensors, numbers and strings only, no pickled code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from otdiv._files import one_line, replaced

if TYPE_CHECKING:
    import numpy as np
    import torch

FORMAT = "otdiv-critic-training-state-1"


@dataclass
class Restored:
    """What a saved state gives back besides the objects it loads into."""

    step: int
    seconds: float
    flushed: bool
    eval_real: torch.Tensor
    eval_fake: torch.Tensor
    history: tuple[list[int], list[float], list[float]]


def _key_text(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def save_state(path: str | os.PathLike, key: dict[str, Any], step: int, seconds: float,
               flushed: bool, critic: torch.nn.Module, opts: list, decays: list,
               rng: np.random.Generator, gen: torch.Generator, eval_real: torch.Tensor,
               eval_fake: torch.Tensor,
               history: tuple[list[int], list[float], list[float]]) -> None:
    """Write the loop's state after ``step`` steps to ``path`` (whole or not at all). A file
    system that refuses (full, gone, read-only) costs the state, not the training: a
    warning says so."""
    import warnings

    import torch

    state = {"format": FORMAT, "key": _key_text(key), "step": step, "seconds": seconds,
             "flushed": bool(flushed),
             "critic": critic.state_dict(), "optimizers": [o.state_dict() for o in opts],
             "schedules": [d.state_dict() for d in decays],
             "rng": rng.bit_generator.state, "generator": gen.get_state(),
             "eval_real": eval_real, "eval_fake": eval_fake,
             "history": [list(h) for h in history]}
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with replaced(path, "wb") as fh:
            torch.save(state, fh)
    except OSError as exc:
        warnings.warn(f"checkpoint: the training state at step {step} could not be written "
                      f"to {path} ({exc.strerror or exc}); training goes on without it",
                      RuntimeWarning, stacklevel=3)


def load_state(path: str | os.PathLike, key: dict[str, Any], critic: torch.nn.Module,
               opts: list, decays: list, rng: np.random.Generator, gen: torch.Generator,
               device: torch.device, name: str = "checkpoint") -> Restored | None:
    """Load the state at ``path`` into the critic, optimisers, schedules and generators;
    None when there is no file. A file of another run (its key differs from ``key``) or one
    that cannot be read is a ValueError naming ``name``."""
    import torch

    if not os.path.exists(path):
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError("not a training state of otdiv")
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise ValueError(f"{name}: cannot read the training state {path} "
                         f"({type(exc).__name__}: {one_line(exc)[:200]}); "
                         "delete it to train from the start") from None
    if state["key"] != _key_text(key):
        saved, now = json.loads(state["key"]), json.loads(_key_text(key))
        differ = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
        raise ValueError(f"{name}: {path} holds the training state of another run (it "
                         f"differs in {', '.join(differ)}); delete it or name another file")
    try:
        critic.load_state_dict(state["critic"])
        for opt, saved in zip(opts, state["optimizers"], strict=True):
            opt.load_state_dict(saved)
        for decay, saved in zip(decays, state["schedules"], strict=True):
            decay.load_state_dict(saved)
        rng.bit_generator.state = state["rng"]
        gen.set_state(state["generator"].cpu())
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:  # the key matched
        raise ValueError(f"{name}: the training state {path} does not fit this run "
                         f"({type(exc).__name__}: {one_line(exc)[:200]}); "
                         "delete it to train from the start (a critic given as critic= may "
                         "be partly loaded)") from None
    steps, estimates, penalties = (list(h) for h in state["history"])
    return Restored(int(state["step"]), float(state["seconds"]), bool(state["flushed"]),
                    state["eval_real"].to(device), state["eval_fake"].to(device),
                    (steps, estimates, penalties))
