"""The audit's one-line verdict: each finding from an audit built to have it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from otdiv.audit.verdict import tail_rise, verdict


def _audit(estimate=1.0, truth=1.0, grad_norm=1.0, certified=0.9, upper=1.2, closed=True,
           flow=None):
    normalized = estimate / grad_norm
    return SimpleNamespace(  # flow None: CriticAudit's value when it does not exist
        estimate=estimate, truth=truth, exact_w1=truth, closed_form_w1=truth if closed else None,
        rel_error=estimate / truth - 1, normalized_estimate=normalized,
        rel_error_normalized=normalized / truth - 1, grad_norm=grad_norm,
        certified_lower=certified, lipschitz_upper=upper, flow_corrected=flow,
        rel_error_flow_corrected=None if flow is None else flow / truth - 1)


def test_tail_rise_is_the_least_squares_slope_of_the_last_fifth(rng):
    steps = np.arange(0, 1001, 20)
    est = 0.3 * steps / 1000 + 0.01 * rng.standard_normal(len(steps))
    rise, se = tail_rise(steps, est)
    tail = steps >= 800
    slope = np.polyfit(steps[tail], est[tail], 1)[0]
    np.testing.assert_allclose(rise, slope * 200, rtol=1e-12)
    assert 0 < se < 0.05
    assert tail_rise([0, 10], [0.0, 1.0]) is None  # too few records: no trend


def test_rising_history_says_raise_steps():
    steps = list(range(0, 2001, 40))
    rising = [min(1.0, s / 2000) for s in steps]
    v = verdict(_audit(), history=(steps, rising), constraint="lp")
    assert v.status == "check" and "rising" in v.findings
    assert "raise --steps (e.g. --steps 4000)" in v.message
    flat = [1.0 + 0.001 * (-1) ** k for k in range(len(steps))]
    assert "rising" not in verdict(_audit(), history=(steps, flat)).findings


def test_ok_names_the_error_and_the_certificate():
    v = verdict(_audit(estimate=1.02, certified=0.8))
    assert v.status == "ok" and v.findings == ("ok",)
    assert v.message == "ok: within 2.0 % of W1 (closed form); certified >= 0.8"
    assert "exact W1" in verdict(_audit(closed=False)).message


def test_penalty_slope_points_to_the_normalised_estimate():
    v = verdict(_audit(estimate=1.10, grad_norm=1.09))
    assert v.status == "ok" and "slope" in v.findings
    assert "+10.0 %" in v.message and "G = 1.09" in v.message


def test_an_lp_critic_s_slope_points_to_the_flow_corrected_estimate():
    # raw +10 %, flow-corrected -1 % (no exact OT), normalised +0.9 %: quote the OT-free one
    v = verdict(_audit(estimate=1.10, grad_norm=1.09, flow=0.99), constraint="lp")
    assert v.status == "ok" and "slope" in v.findings
    assert "flow-corrected estimate 0.99 (-1.0 %" in v.message and "G =" not in v.message
    # a GP critic's flat parts enter the flow weights with the wrong sign: not quoted
    g = verdict(_audit(estimate=1.10, grad_norm=1.09, flow=0.99), constraint="gp")
    assert "gradient-normalised estimate" in g.message and "flow" not in g.message
    # flow-corrected out of tolerance, normalised in: the normalised one, as before
    o = verdict(_audit(estimate=1.10, grad_norm=1.09, flow=0.80), constraint="lp")
    assert "gradient-normalised estimate" in o.message
    # all three out: the wrong shape, with every error named
    w = verdict(_audit(estimate=0.8, grad_norm=0.95, flow=0.75), constraint="lp")
    assert w.status == "check" and "flow-corrected -25.0 %" in w.message


@pytest.mark.parametrize(("constraint", "advice"), [("gp", "--constraint lp"),
                                                     ("lp", "raise --steps"),
                                                     ("clip", "certified bound"),
                                                     ("spectral", "too flat")])
def test_wrong_shape_gets_advice_per_constraint(constraint, advice):
    v = verdict(_audit(estimate=0.8, grad_norm=0.95), constraint=constraint)
    assert v.status == "check" and "off" in v.findings
    assert "-20.0 %" in v.message and advice in v.message


def test_loose_certificate_names_the_lipschitz_bound():
    v = verdict(_audit(certified=0.063, upper=13.3))
    assert "loose" in v.findings and "Lip upper 13.3" in v.message
    assert "--constraint spectral" in v.message
    assert len(v.message.splitlines()) == 1
