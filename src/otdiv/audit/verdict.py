"""A one-line verdict on a critic audit: is the estimate right, and what to change if not.

It reads three things, in this order of importance:

* **training** — the estimate's least-squares rise over the last 20 % of the recorded
  history, rise = slope · (0.2 · steps). "Still rising" when rise > 2 % of |final estimate|
  and more than twice its standard error: the run stopped before the critic converged.
* **the estimate** — e = estimate / truth − 1 (raw) and e_G = (estimate / G) / truth − 1
  (gradient-normalised, :class:`~otdiv.audit.critic.CriticAudit`); "within" means
  |e| <= ``tol`` (5 %); for an LP critic also e_F, the error of the flow-corrected
  estimate (``flow_corrected``, which needs no exact OT). A raw estimate out of tolerance
  with e_F (LP) or e_G inside is the penalty's slope: quote the flow-corrected estimate,
  the number docs/critic_benchmark.md recommends for LP critics, else estimate / G; all
  out is a critic of the wrong shape.
* **the certificate** — ``certified_lower`` <= exact W1 whatever the critic; "loose" when
  it is below half of exact W1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TOLERANCE = 0.05
TAIL = 0.2


@dataclass(frozen=True)
class Verdict:
    """``status`` "ok" or "check", ``message`` one line, ``findings`` short codes
    ("rising", "slope", "off", "loose", "ok")."""

    status: str
    message: str
    findings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message,
                "findings": list(self.findings)}


def tail_rise(steps: Sequence[int], estimates: Sequence[float],
              tail: float = TAIL) -> tuple[float, float] | None:
    """(rise, its standard error) of the estimate over the last ``tail`` of training.

    rise = b · tail · steps[-1], b the least-squares slope of the records with
    step >= (1 − tail) · steps[-1]; None with fewer than 4 such records (no trend to fit).
    """
    s = np.asarray(steps, dtype=float)
    e = np.asarray(estimates, dtype=float)
    if len(s) == 0 or s[-1] <= 0:
        return None
    keep = s >= (1.0 - tail) * s[-1]
    s, e = s[keep], e[keep]
    if len(s) < 4 or np.ptp(s) == 0:
        return None
    sc = s - s.mean()
    b = float(np.dot(sc, e - e.mean()) / np.dot(sc, sc))
    resid = e - e.mean() - b * sc
    se_b = math.sqrt(float(np.dot(resid, resid)) / (len(s) - 2) / float(np.dot(sc, sc)))
    span = tail * s[-1] if len(s) else 0.0
    return b * span, se_b * span


def _advice(constraint: str | None, short: bool) -> str:
    if constraint == "clip":
        return ("clipping makes the critic K-Lipschitz for an unknown K << 1: quote the "
                "certified bound, or use --constraint lp")
    if constraint == "spectral" and short:
        return "the spectral critic is too flat to bend with the transport: use --constraint lp"
    if constraint == "gp":
        return "use --constraint lp (with the default --softplus-beta auto)"
    if constraint == "lp":
        return ("raise --steps (the critic aligns with the transport slowly, the more so "
                "in high dimension: docs/critic_benchmark_history.md, \"Longer training\")")
    return "this critic is not a W1 estimate to that precision"


def verdict(audit, *, history: tuple[Sequence[int], Sequence[float]] | None = None,
            constraint: str | None = None, tol: float = TOLERANCE) -> Verdict:
    """The verdict on ``audit`` (a :class:`~otdiv.audit.critic.CriticAudit`).

    ``history`` = (steps, estimates) of training (``TrainedCritic.history_step``,
    ``history_estimate``) when the critic was trained here; ``constraint`` the one it was
    trained with (for the advice). Advice names ``otdiv audit``'s options.
    """
    findings: list[str] = []
    parts: list[str] = []
    ok = True
    trend = tail_rise(*history) if history is not None and len(history[0]) else None
    if trend is not None:
        rise, se = trend
        final = abs(history[1][-1])
        if rise > 0.02 * final and rise > 2 * se:
            ok = False
            findings.append("rising")
            pct = 100 * rise / final if final > 0 else float("inf")
            parts.append(f"estimate still rising over the last {100 * TAIL:.0f} % of "
                         f"training "
                         f"(+{pct:.1f} %): raise --steps (e.g. --steps {2 * history[0][-1]})")
    truth = audit.truth
    what = "W1 (closed form)" if audit.closed_form_w1 is not None else "exact W1"
    e, e_g = audit.rel_error, audit.rel_error_normalized
    # the flow correction assumes the one-sided penalty's flat parts (GP: wrong sign)
    e_f = audit.rel_error_flow_corrected if constraint in ("lp", None) else None
    if not (truth > 0 and e is not None):
        parts.append(f"W1 is {truth:.4g} here: estimate {audit.estimate:.4g}")
    elif abs(e) <= tol:
        findings.append("ok")
        parts.append(f"within {100 * abs(e):.1f} % of {what}")
    elif e_f is not None and abs(e_f) <= tol:
        findings.append("slope")
        parts.append(f"raw estimate {100 * e:+.1f} % from {what} because of the penalty's "
                     f"slope: quote the flow-corrected estimate {audit.flow_corrected:.4g} "
                     f"({100 * e_f:+.1f} %; it needs no exact OT)")
    elif e_g is not None and abs(e_g) <= tol:
        findings.append("slope")
        parts.append(f"raw estimate {100 * e:+.1f} % from {what} because the critic's slope "
                     f"along the transport is G = {audit.grad_norm:.3g}: quote the "
                     f"gradient-normalised estimate {audit.normalized_estimate:.4g} "
                     f"({100 * e_g:+.1f} %)")
    else:
        ok = False
        findings.append("off")
        norm = f", normalised {100 * e_g:+.1f} %" if e_g is not None else ""
        norm += f", flow-corrected {100 * e_f:+.1f} %" if e_f is not None else ""
        short = (e_g if e_g is not None else e) < 0
        parts.append(f"estimate {100 * e:+.1f} % from {what}{norm}: "
                     f"{_advice(constraint, short)}")
    cert = audit.certified_lower
    if cert is None:
        parts.append("no certificate (no Lipschitz bound or envelope)")
    elif audit.exact_w1 > 0 and cert < 0.5 * audit.exact_w1:
        findings.append("loose")
        upper = audit.lipschitz_upper
        up = (f"Lip upper {upper:.3g}" if upper is not None and math.isfinite(upper)
              else "Lip upper unknown")
        parts.append(f"certificate loose: certified >= {cert:.4g} only "
                     f"({100 * cert / audit.exact_w1:.0f} % of exact W1; {up}) — "
                     f"--constraint spectral bounds Lip by 1")
    else:
        parts.append(f"certified >= {cert:.4g}")
    status = "ok" if ok else "check"
    return Verdict(status, f"{status}: " + "; ".join(parts), tuple(findings))
