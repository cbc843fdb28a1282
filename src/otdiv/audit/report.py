"""Report an audit: a text table, a JSON file and PNG plots (matplotlib, Agg canvas).

Plots are drawn on ``matplotlib.figure.Figure`` with the Agg canvas directly, never through
pyplot, so they need no display and never change the backend of a user's session.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from otdiv._files import replaced

COLUMNS = ("problem", "constraint", "estimate", "exact W1", "closed form", "rel. error",
           "slope G", "estimate / G", "rel. error (/ G)", "flow-corrected",
           "rel. error (flow)", "Lip lower", "Lip upper",
           "certified", "time [s]", "CPU [s]")


def _num(value: float | None, fmt: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return format(value, fmt)


def _pct(fraction: float | None) -> str:
    text = _num(None if fraction is None else 100 * fraction, "+.1f")
    return text if text == "-" else text + " %"


def audit_row(problem: str, constraint: str, audit, seconds: float) -> dict[str, str]:
    """One table row of a :class:`~otdiv.audit.critic.CriticAudit`, or of its ``to_dict()``
    (a results.jsonl row's "audit"); seconds = train + audit.

    "rel. error" is the raw estimate's (estimate / truth − 1); "slope G" is
    ``grad_norm``, "estimate / G" ``normalized_estimate`` and "rel. error (/ G)" its error;
    "flow-corrected" is the OT-free ``flow_corrected`` estimate (blank for audits written
    before it existed, or for critics without a gradient penalty).
    """
    if isinstance(audit, Mapping):  # to_dict() writes inf (and, before 2026-12-06, nan)
        # as strings
        audit = SimpleNamespace(**{k: float(v) if v in ("inf", "-inf", "nan") else v
                                   for k, v in audit.items()})
    return {
        "problem": problem,
        "constraint": constraint,
        "estimate": f"{_num(audit.estimate)} ± {_num(audit.estimate_std, '.3f')}",
        "exact W1": f"{_num(audit.exact_w1)} ± {_num(audit.exact_w1_std, '.3f')}",
        "closed form": _num(audit.closed_form_w1),
        "rel. error": _pct(audit.rel_error),
        "slope G": _num(audit.grad_norm, ".3g"),
        "estimate / G": _num(audit.normalized_estimate),
        "rel. error (/ G)": _pct(audit.rel_error_normalized),
        "flow-corrected": _num(getattr(audit, "flow_corrected", None)),
        "rel. error (flow)": _pct(getattr(audit, "rel_error_flow_corrected", None)),
        "Lip lower": _num(audit.lipschitz_lower, ".3g"),
        "Lip upper": _num(audit.lipschitz_upper, ".3g"),
        "certified": _num(audit.certified_lower),
        "time [s]": _num(seconds, ".1f"),
    }


def table(rows: Sequence[dict[str, str]], *, markdown: bool = False) -> str:
    """Rows (dicts keyed by ``COLUMNS``) as an aligned text table, or a markdown table."""
    cols = [c for c in COLUMNS if any(c in r for r in rows)] if rows else list(COLUMNS)
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(lines)
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*cols), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*row) for row in cells])


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON; non-finite floats become the strings "inf"/"nan"."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.generic):
            return clean(v.item())
        return v

    path = Path(path)
    with replaced(path) as fh:  # whole or the previous one: a sweep's resume reads it
        fh.write(json.dumps(clean(payload), indent=2) + "\n")
    return path


def figure(width: float = 6.0, height: float = 4.5):
    """A matplotlib Figure of the audit's plots (Agg canvas: no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_level_sets(critic, real: np.ndarray, fake: np.ndarray, path: str | Path, *,
                    plot_range: float = 3.0, title: str = "") -> Path:
    """Contours of a 2-D critic over [-r, r]^2 with the real and fake samples on top."""
    import torch

    from otdiv.audit.models import scores

    if real.shape[1] != 2:
        raise ValueError(f"level sets need 2-D samples, got dimension {real.shape[1]}")
    grid = np.linspace(-plot_range, plot_range, 128)
    gx, gy = np.meshgrid(grid, grid)
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    p = next(iter(critic.parameters()), None) if isinstance(critic, torch.nn.Module) else None
    dtype = p.dtype if p is not None else torch.float32
    device = p.device if p is not None else "cpu"
    with torch.no_grad():
        z = scores(critic, torch.as_tensor(pts, dtype=dtype).to(device)).cpu().double().numpy()
    fig = figure(5.5, 5.0)
    ax = fig.add_subplot()
    cs = ax.contourf(gx, gy, z.reshape(gx.shape), levels=20, cmap="viridis", alpha=0.85)
    fig.colorbar(cs, ax=ax, label="critic f(x)")
    ax.scatter(fake[:500, 0], fake[:500, 1], s=4, c="tab:green", label="fake (Q)", alpha=0.6)
    ax.scatter(real[:500, 0], real[:500, 1], s=4, c="tab:orange", label="real (P)", alpha=0.8)
    ax.set_xlim(-plot_range, plot_range)
    ax.set_ylim(-plot_range, plot_range)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "critic level sets")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def plot_history(trained, path: str | Path, *, exact_w1: float | None = None,
                 exact_std: float | None = None, closed_form: float | None = None,
                 title: str = "") -> Path:
    """The critic's estimate over training against exact W1 (band: ± its sampling spread)."""
    fig = figure()
    ax = fig.add_subplot()
    ax.plot(trained.history_step, trained.history_estimate, lw=1.5,
            label=f"critic estimate ({trained.constraint})")
    if exact_w1 is not None:
        ax.axhline(exact_w1, color="k", ls="--", lw=1, label="exact W1 (held-out samples)")
        if exact_std:
            ax.axhspan(exact_w1 - exact_std, exact_w1 + exact_std, color="k", alpha=0.1)
    if closed_form is not None:
        ax.axhline(closed_form, color="tab:red", ls=":", lw=1.5, label="closed-form W1")
    ax.set_xlabel("critic step")
    ax.set_ylabel("E_P f − E_Q f")
    ax.legend(fontsize=8)
    ax.set_title(title or "estimate vs exact W1 over training")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def plot_lines_sweep(sweep, path: str | Path) -> Path:
    """W1 estimate and JSD estimate against theta for the parallel lines."""
    fig = figure()
    ax = fig.add_subplot()
    theta = np.asarray(sweep.theta)
    order = np.argsort(theta)
    ax.plot(theta[order], np.asarray(sweep.w1_true)[order], "k--", lw=1, label="W1 = |θ|")
    ax.plot(theta[order], np.asarray(sweep.w1_estimate)[order], "o-",
            label=f"critic W1 estimate ({sweep.constraint})")
    ax.plot(theta[order], np.asarray(sweep.jsd_estimate)[order], "s-",
            label="discriminator JSD estimate")
    ax.axhline(math.log(2), color="tab:gray", ls=":", lw=1, label="log 2")
    ax.set_xlabel("θ")
    ax.set_ylabel("estimate")
    ax.legend(fontsize=8)
    ax.set_title("parallel lines: JSD saturates at log 2, W1 follows |θ|")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
