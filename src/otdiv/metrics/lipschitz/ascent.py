r"""The attained lower bound: the largest gradient norm ‖∇f(w)‖₂ found by sampling and an
adaptive ascent on ‖∇f‖, checked against a central secant of f so that an autograd artefact
at a kink cannot inflate it. torch only (loaded by the caller).
"""

from __future__ import annotations

import math

from otdiv._array import check_scores


def _scores(critic, z):
    return check_scores(critic(z), z.shape[0], "critic", verb="return", tensor=True,
                        detail=f" for an input of shape {tuple(z.shape)}")


def _differentiable(scores):
    if not scores.requires_grad:
        raise ValueError(
            "critic(x) does not require grad, so its gradient cannot be taken (a detached, "
            "numpy or no_grad computation inside the critic?); lipschitz_bounds needs a "
            "differentiable critic: for a black-box function use lipschitz_empirical(f, x)"
        )
    return scores


def _grad_norms(critic, z, *, chunk: int = 4096):
    """‖∇f(z_i)‖₂ for each row of z (samples are independent: the critic runs in eval mode)."""
    import torch

    norms = []
    for part in torch.split(z, chunk):
        p = part.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(_differentiable(_scores(critic, p)).sum(), p,
                                       allow_unused=True)
        if g is None:  # f does not depend on its input
            g = torch.zeros_like(p)
        norms.append(_row_norms(g).detach())
    return torch.cat(norms)


def _ascent_direction(critic, z):
    """∇_z ‖∇f(z)‖² per row, or zeros where f is piecewise linear (no second derivative)."""
    import torch

    p = z.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(_scores(critic, p).sum(), p, create_graph=True,
                                   allow_unused=True)
        if g is None or not g.requires_grad:
            return torch.zeros_like(z)
        (h,) = torch.autograd.grad((g * g).sum(), p, allow_unused=True)
    return torch.zeros_like(z) if h is None else h.detach()


def _row_norms(v):
    """‖v_i‖₂ of each row without overflow or underflow of the squares (rows scaled by their
    largest entry first), so a gradient of 1e200 has a norm."""
    flat = v.flatten(1)
    if flat.shape[1] == 0:
        return flat.new_zeros(flat.shape[0])
    big = flat.abs().amax(dim=1, keepdim=True)
    return (flat / big.where(big > 0, big.new_ones(()))).norm(dim=1) * big[:, 0]


def _unit_rows(v, tiny: float):
    n = _row_norms(v).clamp_min(tiny)
    return v / n.reshape((-1,) + (1,) * (v.ndim - 1)), n > tiny


def _lower_bound(critic, x, n_interpolates, ascent_steps, gen):
    import torch

    n = x.shape[0]
    shape = (-1,) + (1,) * (x.ndim - 1)
    cands = [x]
    if n_interpolates and n > 1:
        i = torch.randint(n, (n_interpolates,), generator=gen).to(x.device)
        j = torch.randint(n, (n_interpolates,), generator=gen).to(x.device)
        t = torch.rand(n_interpolates, generator=gen, dtype=x.dtype).to(x.device).reshape(shape)
        cands.append(x[i] + t * (x[j] - x[i]))
    pts = torch.cat(cands)
    norms = _grad_norms(critic, pts)
    if not bool(torch.isfinite(norms).all()):
        return math.inf, pts[0], "gradient"  # the caller widens to float64 or reports it
    # the typical distance to the mean, rescaled so that squares cannot overflow at 1e300
    centred = (x - x.mean(0)).flatten(1)
    big = float(centred.abs().max()) if centred.numel() else 0.0
    spread = big * float((centred / big).norm(dim=1).mean()) if big > 0 else 0.0
    scale = spread / math.sqrt(max(1, x[0].numel())) if spread > 0 else 1.0
    tiny = torch.finfo(x.dtype).tiny
    # ascent from the best starting points: a step along ∇‖∇f‖² (smooth critics) and a random
    # step (piecewise-linear critics, where that gradient vanishes); a point moves only when
    # its gradient norm grows, and its step size adapts (×1.5 on success, ×0.5 otherwise)
    k = min(32, pts.shape[0])
    top = torch.topk(norms, k).indices
    z, best = pts[top].clone(), norms[top].clone()
    step = torch.full((k,), 0.1 * scale, dtype=x.dtype, device=x.device)
    second_order = True
    for _ in range(ascent_steps):
        direction = _ascent_direction(critic, z) if second_order else torch.zeros_like(z)
        # a piecewise-linear critic has ∇‖∇f‖² = 0: stop paying for double backward
        second_order = second_order and bool(direction.abs().max() > 0)
        up, has = _unit_rows(direction, tiny)
        noise = torch.randn(z.shape, generator=gen, dtype=x.dtype).to(x.device)
        rnd, _ = _unit_rows(noise, tiny)
        up = torch.where(has.reshape(shape), up, rnd)
        props = torch.cat([z + step.reshape(shape) * up, z + step.reshape(shape) * rnd])
        pn = _grad_norms(critic, props).reshape(2, k)
        which = pn.argmax(0)
        cand_norm = pn.max(0).values
        better = cand_norm > best
        chosen = props.reshape((2, k, *z.shape[1:]))[which, torch.arange(k, device=z.device)]
        z = torch.where(better.reshape(shape), chosen, z)
        best = torch.where(better, cand_norm, best)
        step = torch.where(better, step * 1.5, step * 0.5).clamp_min(1e-6 * scale)
    pts = torch.cat([pts, z])
    norms = torch.cat([norms, best])
    if not bool(torch.isfinite(norms).all()):
        return math.inf, pts[0], "gradient"
    return _verified_max(critic, pts, norms, scale)


def _widened(critic, dtype):
    """A copy of the critic in ``dtype`` (the caller's module is not touched)."""
    import copy

    return copy.deepcopy(critic).to(dtype)


def _verified_max(critic, pts, norms, scale):
    r"""The largest gradient norm that a central secant of f confirms.

    autograd returns *a* derivative at a kink of a piecewise-linear critic, which can
    exceed every nearby slope (relu(x) − x − relu(−x) ≡ 0 has autograd derivative −1 at 0).
    The 16 best candidates w are checked in float64 whenever the critic is a module (a
    float64 copy of it: the function in nearly exact arithmetic, the one that ``upper``
    bounds), otherwise in their own dtype; ε is the machine epsilon of the coarser of the
    points' and the scores' dtypes (a critic may score in another). With u = ∇f(w)/‖∇f(w)‖
    and w± = w ± hu as rounded, w is kept when the change of f agrees with the change its
    gradient predicts along the displacement actually made:

    .. math::
        |f(w_+) - f(w_-) - \nabla f(w)\cdot(w_+ - w_-)|
        \le 10^{-3}\,|\nabla f(w)\cdot(w_+ - w_-)| + 4\varepsilon(|f(w_+)| + |f(w_-)|).

    The step h = ε^{1/3} max(‖w‖∞, scale) makes the rounding of f(w±) a relative 4ε|f|/2h‖∇f‖
    of the judged difference, not the sample's spread; the second term allows for it. The
    first bounds the truncation of the central difference, (h/ℓ)²/6 for a critic that bends
    on a length ℓ ≥ 13 h. Comparing with ∇f·(w₊ − w₋) rather than 2h‖∇f‖ makes the rounding
    of w ± hu itself harmless. The secants judge only changes larger than the rounding:
    where |∇f(w)·(w₊ − w₋)| < 100 · 4ε(|f(w₊)| + |f(w₋)|) (float32 scores above about
    100 ‖∇f‖ × the point's size, whose kinks' changes the rounding hides), w is kept when its
    gradient agrees with the mean of its neighbours' ∇f(w±) to 1 % instead, its value capped
    at their larger norm (:func:`_agrees_with_neighbours`). The value returned is ‖∇f(w)‖ in
    the precision of the check; if no candidate passes, the best secant net of the rounding,
    (|f(w₊) − f(w₋)| − 4ε(|f(w₊)| + |f(w₋)|))₊ / ‖w₊ − w₋‖, is — for blind rows also over
    longer steps (:func:`_wide_secant`) — a slope of f if its scores are within 4ε|f| of the
    function it computes exactly.
    """
    import torch

    order = torch.argsort(norms, descending=True)[:16]
    w = pts[order].detach()
    checker = _checker(critic, w)
    try:
        gn, sec, ok = _secant_check(checker, w.to(_dtype_of(checker, w)), scale)
    except RuntimeError:  # the float64 copy cannot run (a float32 tensor held outside
        gn, sec, ok = _secant_check(critic, w, scale)  # its parameters): check in w's dtype
    if float(gn.max()) == 0:
        return 0.0, w[0], "gradient"
    if bool(ok.any()):
        k = int(torch.nonzero(ok)[0])
        return float(gn[k]), w[k], "gradient"
    k = int(torch.argmax(sec))
    return float(sec[k]), w[k], "secant"


def _checker(critic, w):
    """The critic in which secants are checked: a float64 copy of a float32 module."""
    import torch

    if w.dtype == torch.float64 or not isinstance(critic, torch.nn.Module):
        return critic
    try:
        return _widened(critic, torch.float64)
    except (RuntimeError, TypeError):  # a device without float64
        return critic


def _dtype_of(checker, w):
    import torch

    params = [p for p in checker.parameters() if p.is_floating_point()] if isinstance(
        checker, torch.nn.Module) else []
    return params[0].dtype if params else w.dtype


def _secant_check(f, w, scale):
    """(‖∇f(w)‖, secant slope, agreement) per row of w; see :func:`_verified_max`."""
    import torch

    shape = (-1,) + (1,) * (w.ndim - 1)
    p = w.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = _scores(f, p)
        (g,) = torch.autograd.grad(scores.sum(), p, allow_unused=True)
    # a critic may score in another precision than its input's (a float64, float16 or
    # bfloat16 result): the check is as fine as the coarser of the two
    eps = max(torch.finfo(w.dtype).eps, torch.finfo(scores.dtype).eps)
    if g is None:
        g = torch.zeros_like(w)
    g = g.to(w.dtype)
    gn = _row_norms(g)
    u = g / gn.clamp_min(torch.finfo(w.dtype).tiny).reshape(shape)
    size = w.flatten(1).abs().amax(dim=1).clamp_min(scale)
    h = (eps ** (1 / 3) * size).reshape(shape)
    with torch.no_grad():
        plus, minus = w + h * u, w - h * u
        fp, fm = _scores(f, plus).to(w.dtype), _scores(f, minus).to(w.dtype)
        d = plus - minus
        change = fp - fm
        predicted = (g * d).flatten(1).sum(dim=1)
        rounding = 4 * eps * (fp.abs() + fm.abs())
        sec = _net_secant(change, rounding, _row_norms(d))
        ok = (change - predicted).abs() <= 1e-3 * predicted.abs() + rounding
    # where the rounding hides the change it judges (float32 scores near 1e5 for slopes near 1,
    # or scores coarser than the points), the gradient must agree with its neighbours'
    # instead, and the secant is taken over a step long enough to see past the rounding
    blind = predicted.abs() < 100 * rounding
    if bool(blind.any()):
        agree, sides = _agrees_with_neighbours(f, g, plus, minus)
        ok = torch.where(blind, agree, ok)
        gn = torch.where(blind & agree, torch.minimum(gn, sides), gn)
        sec = torch.where(blind, torch.maximum(sec, _wide_secant(f, w, u, h, size, eps)), sec)
    return gn, sec, ok


def _net_secant(change, rounding, dist):
    """(|change| − rounding)₊ / dist, 0 where dist is 0 or a score was not finite: a slope of
    f whatever rounding within the allowance did."""
    import torch

    tiny = torch.finfo(dist.dtype).tiny
    sec = (change.abs() - rounding).clamp_min(0) / dist.clamp_min(tiny)
    return torch.where((dist > 0) & torch.isfinite(sec), sec, torch.zeros_like(sec))


def _wide_secant(f, w, u, h, size, eps):
    """The largest net secant over w ± 4^k h·u, k = 1, 2, … while 4^k h ≤ 2^10 × the point's
    size, per row: where the rounding hides the change over the check's own step h, a longer
    one sees past it (each is a slope of f; the longest that the critic still bends little
    over gives the most)."""
    import torch

    shape = (-1,) + (1,) * (w.ndim - 1)
    best = torch.zeros(len(w), dtype=w.dtype, device=w.device)
    step = h.flatten()
    with torch.no_grad():
        # 4^k h passes 2^10 size within 16 steps (h ≥ ε^{1/3} size, float16's ε included);
        # the bound also ends the loop where h underflowed to 0 (points near 1e-320)
        for _ in range(16):
            step = 4 * step
            if bool((step > 2**10 * size).all()):
                break
            plus, minus = w + step.reshape(shape) * u, w - step.reshape(shape) * u
            fp, fm = _scores(f, plus).to(w.dtype), _scores(f, minus).to(w.dtype)
            sec = _net_secant(fp - fm, 4 * eps * (fp.abs() + fm.abs()), _row_norms(plus - minus))
            best = torch.maximum(best, torch.where(step <= 2**10 * size, sec, 0.0))
    return best


def _agrees_with_neighbours(f, g, plus, minus):
    """(agreement, neighbours' norm) per row: ‖(∇f(w₊) + ∇f(w₋))/2 − ∇f(w)‖ ≤ 10⁻² ‖∇f(w)‖,
    and max(‖∇f(w₊)‖, ‖∇f(w₋)‖). A test of the gradient that the scores' offset cannot blur (a
    gradient carries no constant): for a critic smooth on a length ℓ ≥ 13 h the central
    average is within (h/ℓ)²/2 < 3·10⁻³ of ∇f(w); at a kink autograd's derivative (−1 for
    relu(x) − x − relu(−x) at 0) differs from both sides' (0). An artefact within the 1 %
    passes, so the caller keeps min(‖∇f(w)‖, the neighbours' norm): the gradients at w±,
    points off the kink, are derivatives of f."""
    import torch

    sides = []
    for z in (plus, minus):
        p = z.detach().requires_grad_(True)
        with torch.enable_grad():
            (gz,) = torch.autograd.grad(_scores(f, p).sum(), p, allow_unused=True)
        sides.append(torch.zeros_like(z) if gz is None else gz.to(z.dtype))
    gap = _row_norms((sides[0] + sides[1]) / 2 - g)
    side_norm = torch.maximum(_row_norms(sides[0]), _row_norms(sides[1]))
    return gap <= 1e-2 * _row_norms(g), side_norm
