r"""The attained lower bound: the largest gradient norm ‖∇f(w)‖₂ found by sampling and an
adaptive ascent on ‖∇f‖, checked against a central secant of f so that an autograd artefact
at a kink cannot inflate it. torch only (loaded by the caller).
"""

from __future__ import annotations

import math

from otdiv._array import is_tensor


def _scores(critic, z):
    out = critic(z)
    if not is_tensor(out) or out.numel() != z.shape[0]:
        shape = tuple(out.shape) if is_tensor(out) else type(out).__name__
        raise ValueError(
            f"critic must return one score per sample: {z.shape[0]} inputs gave {shape}; "
            "expected a tensor of shape (n,) or (n, 1)"
        )
    return out.reshape(-1)


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
        norms.append(g.flatten(1).norm(dim=1).detach())
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


def _unit_rows(v, tiny: float):
    n = v.flatten(1).norm(dim=1).clamp_min(tiny)
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
    return _verified_max(critic, pts, norms, scale)


def _widened(critic, dtype):
    """A copy of the critic in ``dtype`` (the caller's module is not touched)."""
    import copy

    return copy.deepcopy(critic).to(dtype)


def _verified_max(critic, pts, norms, scale):
    """The largest gradient norm that a central secant of f confirms.

    autograd returns *a* derivative at a kink of a piecewise-linear critic, which can
    exceed every nearby slope (relu(x) − x − relu(−x) ≡ 0 has autograd derivative −1 at 0).
    A candidate w is kept when |f(w + hu) − f(w − hu)| / 2h, u = ∇f(w)/‖∇f(w)‖, agrees
    with ‖∇f(w)‖; if none does, the best secant itself (a true slope of f) is returned.
    """
    import torch

    # float32: h = 1e-3·scale keeps the rounding of f(w ± hu) near 1e-4 of the slope
    rel = 1e-6 if pts.dtype == torch.float64 else 3e-3
    h = scale * (1e-6 if pts.dtype == torch.float64 else 1e-3)
    order = torch.argsort(norms, descending=True)[:16]
    w = pts[order].detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(_scores(critic, w).sum(), w, allow_unused=True)
    if g is None:
        g = torch.zeros_like(w)
    gn = g.flatten(1).norm(dim=1)
    if float(gn.max()) == 0:
        return 0.0, pts[order[0]].detach(), "gradient"
    u = g / gn.clamp_min(torch.finfo(pts.dtype).tiny).reshape((-1,) + (1,) * (w.ndim - 1))
    with torch.no_grad():
        sec = (_scores(critic, w + h * u) - _scores(critic, w - h * u)).abs() / (2 * h)
    ok = (sec - gn).abs() <= rel * gn
    if bool(ok.any()):
        k = int(torch.nonzero(ok)[0])
        return float(gn[k]), w[k].detach(), "gradient"
    k = int(torch.argmax(sec))
    return float(sec[k]), w[k].detach(), "secant"

