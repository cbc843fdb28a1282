"""Fused one-pass KL and JSD over rows of histograms (numba, parallel over rows).

Why a kernel of our own: each histogram row is read once from memory and every bin needs one
(KL) or two (JSD) logarithms, so the speed is that of ``log``. numba calls libm's scalar
``log`` (no SIMD without Intel's SVML runtime), about 4x slower than numpy's vectorised one;
a numpy pipeline instead pays ~10 passes over temporaries. ``_log`` below is branch-free,
so LLVM vectorises the row loops with it; it is the classic argument reduction
x = 2^e · m, m ∈ [√2/2, √2), and log m = 2 atanh(s), s = (m − 1)/(m + 1), with the minimax
polynomial of fdlibm's ``e_log.c`` (error below 1 ulp; tests compare it with ``numpy.log``
on normal, subnormal and special values).

The kernels also return, per row, the sums and negative counts of both inputs so that the caller can
validate and normalise without another pass over the data.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from otdiv.kernels._numba import nb


@intrinsic
def _bits(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, i):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that e · _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_L1 = 6.666666666666735130e-01
_L2 = 3.999999999940941908e-01
_L3 = 2.857142874366239149e-01
_L4 = 2.222219843214978396e-01
_L5 = 1.818357216161805012e-01
_L6 = 1.531383769920937332e-01
_L7 = 1.479819860511658591e-01
_TINY = 2.2250738585072014e-308  # smallest normal float64
_TWO54 = 18014398509481984.0
_SQRT2 = 1.4142135623730951

# error_model="numpy": no ZeroDivisionError branch, which would stop vectorisation;
# only "contract" (fma) and "reassoc" (vectorised sums): inf and nan keep their meaning
_FLAGS = {"contract"}
_SUM_FLAGS = {"reassoc", "contract"}


@nb.njit(inline="always", error_model="numpy", fastmath=_FLAGS, cache=True)
def _frexp(x):
    """(m, e) with x = m · 2^e and m in [1, 2), for finite x > 0, subnormals included.

    x = 0 (or -0.0) gives m = 1 and a meaningless e: callers mask those bins.
    """
    sub = x < _TINY
    xs = x * _TWO54 if sub else x  # subnormals: scale into the normal range first
    bits = _bits(xs)
    e = ((bits >> 52) & 0x7FF) - 1023 - (54 if sub else 0)
    m = _from_bits((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    return m, e


@nb.njit(inline="always", error_model="numpy", fastmath=_FLAGS, cache=True)
def _log_me(m, e):
    """log(m · 2^e) for m in [1, 2) and any integer e, even where m · 2^e is no float64."""
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = e + 1 if big else e
    f = m - 1.0  # exact (Sterbenz)
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (_L1 + w * (_L3 + w * (_L5 + w * _L7))) + w * (_L2 + w * (_L4 + w * _L6))
    hfsq = 0.5 * f * f
    k = float(e)
    return k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)


@nb.njit(inline="always", error_model="numpy", fastmath=_FLAGS, cache=True)
def _log(x):
    """Natural log of x >= 0 (log 0 = -inf, log inf = inf) without branches."""
    m, e = _frexp(x)
    res = _log_me(m, e)
    res = -np.inf if x == 0.0 else res
    return np.inf if x == np.inf else res


@nb.njit(error_model="numpy", fastmath=_FLAGS, cache=True)
def log_array(x, out):
    """out[i] = log(x[i]) with the kernels' own log (exposed for the tests)."""
    for i in range(x.shape[0]):
        out[i] = _log(x[i])


_CHUNK = 2048  # bins per chunk: the chunk's terms stay in L1 between the two loops


@nb.njit(error_model="numpy", fastmath=_SUM_FLAGS, cache=True)
def _row_stats(p, q):
    """(Σp, Σq, #{p < 0}, #{q < 0}) of one row; reassociating plain sums is harmless.

    Counts rather than minima: an integer count vectorises, a NaN-aware minimum does not.
    """
    sp = 0.0
    sq = 0.0
    np_ = 0
    nq = 0
    for j in range(p.shape[0]):
        a = p[j]
        b = q[j]
        sp += a
        sq += b
        np_ += a < 0.0
        nq += b < 0.0
    return sp, sq, np_, nq


@nb.njit(error_model="numpy", fastmath=_SUM_FLAGS, cache=True)
def _sum(buf, n):
    acc = 0.0
    for j in range(n):
        acc += buf[j]
    return acc


_BIG_SUM = -64  # a row whose sum overflows is summed again times 2^-64
_SMALL_SUM = 600  # a row whose sum is below 2^-1000 is taken times 2^600 (exact)


@nb.njit(error_model="numpy", fastmath=_SUM_FLAGS, cache=True)
def _row_scale(row, total):
    """(g, total · 2^g): the row's sum brought back into the normal range by a power of two.

    The normalised bins are then (row · 2^g) / (total · 2^g), whose reciprocal neither
    overflows (a subnormal sum) nor underflows (a sum past 1.8e308 of finite entries).
    A non-finite entry keeps the scaled sum non-finite, so validation still sees it.
    """
    if total == np.inf:
        f = 2.0**_BIG_SUM
        acc = 0.0
        for j in range(row.shape[0]):
            acc += row[j] * f
        return _BIG_SUM, acc
    if total < 2.0**-1000:
        return _SMALL_SUM, total * 2.0**_SMALL_SUM
    return 0, total


# The term loops get "contract" only: with "reassoc" LLVM may reassociate products of
# normalising factors and underflow tiny masses. So each chunk of terms goes to a buffer (a
# loop that vectorises without reassociation) and is summed by _sum.


@nb.njit(error_model="numpy", fastmath=_FLAGS, cache=True)
def _kl_terms(p, q, fp, ip, mr, er, buf):
    for j in range(p.shape[0]):
        a = p[j]
        b = q[j]
        # p_j/q_j = (a/b)(Σq/Σp) = (ma/mb · mr) · 2^(ea − eb + er): the mantissa product lies in
        # (1/4, 4) and the exponent is an integer, so the log is taken without the ratio ever
        # leaving the float range (1e-200/1e200, 4/2.2e-308) and subnormals keep their value
        ma, ea = _frexp(a)
        mb, eb = _frexp(b)
        mx, ex = _frexp(ma / mb * mr)
        term = (a * fp) * ip * _log_me(mx, ex + ea - eb + er)
        term = np.inf if b == 0.0 else term  # also −0.0: p > 0 = q gives KL = inf
        buf[j] = term if a > 0.0 else 0.0  # 0 log 0 = 0 and 0 log(0/q) = 0


_SCALE = 2.0**600  # lifts a subnormal a + b so that 2/(a + b) does not overflow


@nb.njit(error_model="numpy", fastmath=_FLAGS, cache=True)
def _jsd_terms(p, q, fp, ip, fq, iq, buf):
    for j in range(p.shape[0]):
        a = (p[j] * fp) * ip
        b = (q[j] * fq) * iq
        sc = _SCALE if a + b < 1e-300 else 1.0
        h = 2.0 / ((a + b) * sc)
        # d = (a − b)/(a + b) from the difference itself: good to ~2 ulps of d, and exactly 0
        # when a = b. Near p ≈ q both logs share this one d, so their first-order parts cancel
        # exactly in a·log1p(d) + b·log1p(−d) ≈ (a+b)d²/2 and a relative error δ of d moves
        # the bin only by (a+b)d²/2·δ². (Taking d = a·h − 1 instead gave it an absolute error
        # of ulp(1), hence an error floor of (a+b)·ε²/8 per bin even where a = b.) log1p(±d)
        # is log of the rounded 1 ± d plus Goldberg's correction c/(1 ± d), c the rounding
        # error of 1 ± d (|c| <= 1.2e-16), with 1/(1 ± d) taken as 1 ∓ d (off by c·d², far
        # below the (a+b)d²/2 being kept). Far from p ≈ q, 2a/(a+b) and 2b/(a+b) themselves
        # are the accurate arguments (1 − d would lose a tiny b).
        d = (a - b) * sc * (0.5 * h)
        near = abs(d) < 0.5
        u = 1.0 + d if near else a * sc * h  # 2a/(a+b) = 1 + d
        w = 1.0 - d if near else b * sc * h  # 2b/(a+b) = 1 − d
        ta = a * (_log(u) + ((d - (u - 1.0)) * w if near else 0.0))
        tb = b * (_log(w) + ((-d - (w - 1.0)) * u if near else 0.0))
        buf[j] = (ta if a > 0.0 else 0.0) + (tb if b > 0.0 else 0.0)


@nb.njit(inline="always", error_model="numpy", cache=True)
def _row_setup(P, Q, stats, r):
    """Row r's stats (Σ, Σ, #neg, #neg) and scaled sums: (gp, Sp·2^gp, gq, Sq·2^gq)."""
    sp, sq, neg_p, neg_q = _row_stats(P[r], Q[r])
    gp, sp = _row_scale(P[r], sp)
    gq, sq = _row_scale(Q[r], sq)
    # the scaled sums: finite and > 0 exactly when the true ones are (or would be, unbounded)
    stats[r, 0], stats[r, 1], stats[r, 2], stats[r, 3] = sp, sq, neg_p, neg_q
    return gp, sp, gq, sq


@nb.njit(parallel=True, error_model="numpy", cache=True)
def kl_rows(P, Q, out, stats, n_threads):
    """out[r] = Σ_j p_j log(p_j / q_j) for the normalised rows p = P[r]/ΣP[r], q = Q[r]/ΣQ[r].

    stats[r] = (ΣP[r], ΣQ[r], #{P[r] < 0}, #{Q[r] < 0}), each sum times a power of two when
    it leaves the normal range (see _row_scale); rows that fail validation give garbage.
    The rows are split into ``n_threads`` contiguous blocks, one buffer per block.
    """
    rows, bins = P.shape
    for t in nb.prange(n_threads):
        buf = np.empty(min(bins, _CHUNK))
        for r in range(t * rows // n_threads, (t + 1) * rows // n_threads):
            gp, sp, gq, sq = _row_setup(P, Q, stats, r)
            msp, esp = _frexp(sp)
            msq, esq = _frexp(sq)
            mr = msq / msp  # Σq/Σp = mr · 2^er, exponent kept apart (e.g. 1e200 / 1e-200)
            er = (esq - gq) - (esp - gp)
            fp, ip = 2.0**gp, 1.0 / sp  # p_j = (P_j · 2^gp) / (ΣP · 2^gp), never 1/subnormal
            acc = 0.0
            for j0 in range(0, bins, _CHUNK):
                j1 = min(j0 + _CHUNK, bins)
                _kl_terms(P[r, j0:j1], Q[r, j0:j1], fp, ip, mr, er, buf)
                acc += _sum(buf, j1 - j0)
            out[r] = acc


@nb.njit(parallel=True, error_model="numpy", cache=True)
def jsd_rows(P, Q, out, stats, n_threads):
    """out[r] = ½ Σ p log(2p/(p+q)) + ½ Σ q log(2q/(p+q)) for the normalised rows.

    Written with log(2p/(p+q)) = log1p(d), d = (p − q)/(p + q), rather than
    H(m) − ½H(p) − ½H(q): a small JSD keeps its relative precision.
    """
    rows, bins = P.shape
    for t in nb.prange(n_threads):
        buf = np.empty(min(bins, _CHUNK))
        for r in range(t * rows // n_threads, (t + 1) * rows // n_threads):
            gp, sp, gq, sq = _row_setup(P, Q, stats, r)
            fp, ip, fq, iq = 2.0**gp, 1.0 / sp, 2.0**gq, 1.0 / sq
            acc = 0.0
            for j0 in range(0, bins, _CHUNK):
                j1 = min(j0 + _CHUNK, bins)
                _jsd_terms(P[r, j0:j1], Q[r, j0:j1], fp, ip, fq, iq, buf)
                acc += _sum(buf, j1 - j0)
            out[r] = 0.5 * acc
