"""SIGMA: numpy's histogram and MINPACK's Levenberg-Marquardt Gaussian fit, batched in torch.

Internal to :mod:`sharpseek.physics`: :func:`_fit_sigma` reproduces the paper's
``scipy.optimize.leastsq`` fit of a Gaussian to each image's 256-bin histogram (SCIENCE.md).
"""

import math

import numpy as np
import torch

from sharpseek.physics.definitions import MODEL_SIZE, SIGMA_BINS
from sharpseek.physics.workspace import _Workspace

_SQRT_2PI = math.sqrt(2.0 * math.pi)
_LOG2E = 1.0 / math.log(2.0)
_EPSMCH = float(np.finfo(np.float64).eps)
_DWARF = float(np.finfo(np.float64).tiny)
_FD_STEP = math.sqrt(_EPSMCH)  # MINPACK fdjac2 relative step, sqrt(max(epsfcn, epsmch))
_FTOL = _XTOL = 1.49012e-08  # scipy.optimize.leastsq defaults
_FACTOR = 100.0  # initial step bound factor (leastsq default)
_MAXFEV = 400  # leastsq default for one parameter without a Jacobian: 200 * (n + 1)
_NEAR_EDGE = 1e-9  # [bins] values closer to a bin edge are re-binned exactly as numpy does


def _histogram_counts(
    flat: torch.Tensor,
    first: torch.Tensor,
    last: torch.Tensor,
    ws: _Workspace,
    counts: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts of numpy.histogram(row, bins=256) for each row of ``flat`` (m, 16384) float64.

    ``first``, ``last`` are each row's min and max; the counts go to ``counts`` (m, 256)
    float64. Returns the outer edges (first, last), with numpy's rule for min == max (range
    (min - 0.5, max + 0.5)). Every value lands in the bin numpy puts it in: numpy truncates
    ((x - first) / (last - first)) * 256, puts the maximum in the last bin, and moves a value
    within an ulp of an edge to the side of the edge its linspace puts it on. Values within
    1e-9 bin of an edge are binned again with numpy's exact arithmetic; no other value can land
    elsewhere.
    """
    m, npix = flat.shape
    same = first == last
    first = torch.where(same, first - 0.5, first)
    last = torch.where(same, last + 0.5, last)
    denom = last - first
    scale = SIGMA_BINS / denom
    # f = (x - first) * 256 / denom + 1e-9 in one pass, clamped to [0.5, 255.5]: the clamp puts
    # the maximum (f = 256) in the last bin, as numpy does, and keeps the minimum (f = 0, bin 0
    # exactly) and the maximum out of the near-edge test below.
    f = ws("t", (MODEL_SIZE, MODEL_SIZE), flat.dtype, m).view(m, npix)
    torch.addcmul((_NEAR_EDGE - first * scale)[:, None], flat, scale[:, None], out=f)
    f.clamp_(0.5, SIGMA_BINS - 0.5)
    idx = ws("idx", (npix,), torch.int64, m).copy_(f)  # truncation
    near_rows = f.frac_().amin(1) < 2 * _NEAR_EDGE  # rows with a value within 1e-9 of an edge
    if bool(near_rows.any()):
        sub = near_rows.nonzero()[:, 0]
        rows, cols = (f[sub] < 2 * _NEAR_EDGE).nonzero(as_tuple=True)
        rows = sub[rows]
        a, lo, span = flat[rows, cols], first[rows], denom[rows]
        step = span / SIGMA_BINS
        k = ((a - lo) / span * SIGMA_BINS).to(torch.int64).clamp_(max=SIGMA_BINS - 1)
        k = k - (a < k.to(a.dtype) * step + lo).to(torch.int64)  # numpy's edges i*step + first
        hi_edge = torch.where(k + 1 == SIGMA_BINS, last[rows], (k + 1).to(a.dtype) * step + lo)
        k = k + ((a >= hi_edge) & (k != SIGMA_BINS - 1)).to(torch.int64)
        idx[rows, cols] = k
    counts.zero_().scatter_add_(1, idx, ws("ones", (npix,), flat.dtype, m, fill=1.0))
    return first, last


def _gaussian_minus(
    neg_c2: torch.Tensor, neg_density: torch.Tensor, s: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """Residual exp(-c^2 / (2 s^2)) / (sqrt(2 pi) s) - density into ``out`` (k, 256).

    Takes -c^2 and -density (k, 256) and s (k,); three passes over the (k, 256) arrays.
    """
    s = s[:, None]
    # exp(y) as exp2(y log2 e): as accurate here (~1e-14 relative) and, unlike torch's exp,
    # as fast where the Gaussian's far tail underflows to subnormal numbers or zero
    torch.mul(neg_c2, _LOG2E / (2.0 * s * s), out=out).exp2_()
    return torch.addcmul(neg_density, out, 1.0 / (_SQRT_2PI * s), out=out)


def _fit_sigma(
    counts: torch.Tensor, first: torch.Tensor, last: torch.Tensor, x0: torch.Tensor, ws: _Workspace
) -> torch.Tensor:
    """SIGMA of each histogram: ``curve_fit`` of the normal density, batched. (m,) float64.

    The histogram is numpy.histogram(..., density=True) from its ``counts`` (m, 256) and outer
    edges (m,): edges as numpy.linspace builds them (i * step + first, the last one = last),
    density = count / (e[i+1] - e[i]) / total count, x = bin centres (e[i] + e[i+1]) / 2.
    The fit is a one-parameter port of MINPACK's ``lmdif`` (forward-difference Jacobian,
    Levenberg-Marquardt parameter from ``lmpar``, trust-region updates and stopping tests) with
    scipy's defaults (ftol = xtol = 1.49012e-8, gtol = 0, factor = 100, maxfev = 400), so each
    row follows the path ``scipy.optimize.curve_fit(f, x, density, p0=[x0])`` takes and stops
    where it stops; rows leave the batch as they finish. Returns |s|, NaN where curve_fit would
    raise (MINPACK info 5-8).
    """
    m, nb, f64 = x0.shape[0], SIGMA_BINS, x0.dtype
    out = torch.full((m,), math.nan, dtype=f64, device=x0.device)
    if m == 0:
        return out
    # (k, 256) arrays live in pairs of workspace buffers: rows of finished fits are squeezed
    # out by copying the others into the twin, so the loop allocates nothing large
    pairs = {key: [ws(key + "0", (nb,), f64, m), ws(key + "1", (nb,), f64, m)] for key in "cdf"}
    lo, hi = pairs["c"]  # edges i = 0..255 and i = 1..256
    i = torch.arange(nb, dtype=f64, device=x0.device)
    torch.mul(i, ((last - first) / nb)[:, None], out=lo).add_(first[:, None])  # i * step + first
    hi[:, :-1] = lo[:, 1:]
    hi[:, -1] = last
    neg_density = torch.sub(hi, lo, out=pairs["d"][1])  # bin widths
    neg_density = torch.div(counts, neg_density, out=pairs["d"][0])
    neg_density.div_(-counts.sum(1, keepdim=True))  # -density
    neg_c2 = lo.add_(hi).div_(2.0)  # bin centres c
    neg_c2.mul_(neg_c2).neg_()  # -c^2
    fvec = _gaussian_minus(neg_c2, neg_density, x0, pairs["f"][0])
    side = 0  # which buffer of each pair holds the live rows
    scratch = [ws("work_a", (nb,), f64, m), ws("work_b", (nb,), f64, m)]
    zeros = torch.zeros_like(x0)
    st = {
        "row": torch.arange(m, device=x0.device),
        "x": x0.clone(),
        "fnorm": torch.linalg.vector_norm(fvec, dim=1),
        "nfev": torch.ones_like(x0),
        "first": torch.ones(m, dtype=torch.bool, device=x0.device),  # MINPACK's iter == 1
        "need_jac": torch.ones(m, dtype=torch.bool, device=x0.device),
        "par": zeros,
        "diag": zeros,
        "delta": zeros,
        "xnorm": zeros,
        "r": zeros,  # |J|, the R of the QR factorisation (its sign cancels in one dimension)
        "jf": zeros,  # J . fvec
        "gnorm": zeros,
    }
    while (k := st["x"].shape[0]) > 0:
        x, fnorm, need = st["x"], st["fnorm"], st["need_jac"]
        neg_c2, neg_density, fvec = (pair[side][:k] for pair in pairs.values())
        work_a, work_b = scratch[0][:k], scratch[1][:k]
        # --- outer loop of lmdif: Jacobian by forward difference, scaling, gradient test ---
        done4 = torch.zeros_like(need)
        if bool(need.any()):
            h = _FD_STEP * x.abs()
            h = torch.where(h == 0, _FD_STEP, h)
            diff = _gaussian_minus(neg_c2, neg_density, x + h, work_a).sub_(fvec)  # h * J
            r_new = torch.linalg.vector_norm(diff, dim=1) / h
            jf_new = torch.linalg.vecdot(diff, fvec) / h
            st["nfev"] = st["nfev"] + need
            st["r"] = r = torch.where(need, r_new, st["r"])
            st["jf"] = jf = torch.where(need, jf_new, st["jf"])
            init = need & st["first"]
            diag = torch.where(init, torch.where(r == 0, 1.0, r), st["diag"])
            st["xnorm"] = torch.where(init, (diag * x).abs(), st["xnorm"])
            delta0 = _FACTOR * st["xnorm"]
            st["delta"] = torch.where(init, torch.where(delta0 == 0, _FACTOR, delta0), st["delta"])
            gnorm = jf.abs() / (fnorm * r)  # |cos| of the angle between fvec and J
            gnorm = torch.where((fnorm == 0) | (r == 0) | gnorm.isnan(), 0.0, gnorm)
            st["gnorm"] = torch.where(need, gnorm, st["gnorm"])
            st["diag"] = torch.where(need, torch.maximum(diag, r), diag)
            done4 = need & (st["gnorm"] <= 0.0)  # info 4 (gtol = 0): x is the answer
        r, jf, diag, delta, par = st["r"], st["jf"], st["diag"], st["delta"], st["par"]
        step, par = _lmpar(r, jf / r, diag, delta, par)
        # --- inner loop of lmdif: trial step, actual vs predicted reduction, bound update ---
        p = -step
        pnorm = (diag * p).abs()
        first = st["first"]
        delta = torch.where(first, torch.minimum(delta, pnorm), delta)
        xt = x + p
        ft = _gaussian_minus(neg_c2, neg_density, xt, work_b)
        fnorm1 = torch.linalg.vector_norm(ft, dim=1)
        nfev = st["nfev"] + 1
        actred = torch.where(0.1 * fnorm1 < fnorm, 1.0 - (fnorm1 / fnorm) ** 2, -1.0)
        temp1 = (r * p).abs() / fnorm
        temp2 = torch.sqrt(par) * pnorm / fnorm
        prered = temp1**2 + temp2**2 / 0.5
        dirder = -(temp1**2 + temp2**2)
        ratio = torch.where(prered != 0, actred / prered, 0.0)
        low = ratio <= 0.25
        temp = torch.where(actred >= 0, 0.5, 0.5 * dirder / (dirder + 0.5 * actred))
        temp = torch.where((0.1 * fnorm1 >= fnorm) | (temp < 0.1), 0.1, temp)
        grow = (par == 0) | (ratio >= 0.75)
        delta = torch.where(
            low, temp * torch.minimum(delta, pnorm / 0.1), torch.where(grow, pnorm / 0.5, delta)
        )
        par = torch.where(low, par / temp, torch.where(grow, 0.5 * par, par))
        ok = ratio >= 1e-4
        x_new = torch.where(ok, xt, x)
        xnorm = torch.where(ok, (diag * x_new).abs(), st["xnorm"])
        small = (actred.abs() <= _FTOL) & (prered <= _FTOL) & (0.5 * ratio <= 1.0)
        converged = (small | (delta <= _XTOL * xnorm)) & ~done4
        failed = (
            (nfev >= _MAXFEV)
            | ((actred.abs() <= _EPSMCH) & (prered <= _EPSMCH) & (0.5 * ratio <= 1.0))
            | (delta <= _EPSMCH * xnorm)
            | (st["gnorm"] <= _EPSMCH)
        ) & ~(converged | done4)
        finished = done4 | converged | failed
        if bool(ok.all()):  # the usual case: take the trial residuals by swapping buffers
            pairs["f"][side], scratch[1] = scratch[1], pairs["f"][side]
        else:
            torch.where(ok[:, None], ft, fvec, out=fvec)
        st.update(
            x=x_new,
            fnorm=torch.where(ok, fnorm1, fnorm),
            nfev=nfev,
            first=first & ~ok,
            need_jac=ok,
            par=par,
            delta=delta,
            xnorm=xnorm,
        )
        if bool(finished.any()):
            x_done = torch.where(done4, x, x_new)[finished]  # info 4 rows took no step
            out[st["row"][finished]] = torch.where(failed[finished], math.nan, x_done.abs())
            keep = (~finished).nonzero()[:, 0]
            st = {key: value[keep] for key, value in st.items()}
            for pair in pairs.values():
                torch.index_select(pair[side][:k], 0, keep, out=pair[1 - side][: keep.shape[0]])
            side = 1 - side
    return out


def _lmpar(
    r: torch.Tensor, qtf: torch.Tensor, diag: torch.Tensor, delta: torch.Tensor, par: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """MINPACK ``lmpar`` for one parameter, batched: the step x and the LM parameter par.

    x solves (r^2 + par diag^2) x = r qtf with par = 0 if the Gauss-Newton step fits the bound
    (|diag x| <= 1.1 delta); otherwise par is found by MINPACK's safeguarded Newton iteration
    (at most 10 steps) until |diag x| is within 10 % of delta.
    """
    x_gn = torch.where(r == 0, 0.0, qtf / r)
    dxnorm = (diag * x_gn).abs()
    fp = dxnorm - delta
    search = fp > 0.1 * delta
    par = torch.where(search, par, 0.0)
    step = x_gn
    if not bool(search.any()):
        return step, par
    t = (diag * (diag * x_gn / dxnorm) / r).abs()
    parl = torch.where(r == 0, 0.0, ((fp / delta) / t) / t)
    gnorm = (r * qtf / diag).abs()
    paru = gnorm / delta
    paru = torch.where(paru == 0, _DWARF / torch.clamp(delta, max=0.1), paru)
    par0 = torch.minimum(torch.maximum(par, parl), paru)
    par = torch.where(search, torch.where(par0 == 0, gnorm / dxnorm, par0), par)
    for it in range(1, 11):
        par = torch.where(search & (par == 0), torch.clamp(0.001 * paru, min=_DWARF), par)
        d = torch.sqrt(par) * diag
        den = r * r + d * d
        xs = r * qtf / den
        dx_new = (diag * xs).abs()
        fp_old, fp_new = fp, dx_new - delta
        step = torch.where(search, xs, step)
        fp = torch.where(search, fp_new, fp)
        stop = (
            (fp_new.abs() <= 0.1 * delta)
            | ((parl == 0) & (fp_new <= fp_old) & (fp_old < 0))
            | (it == 10)
        )
        go = search & ~stop
        if not bool(go.any()):
            break
        t = (diag * (diag * xs / dx_new) / torch.sqrt(den)).abs()
        parc = ((fp_new / delta) / t) / t
        parl = torch.where(go & (fp_new > 0), torch.maximum(parl, par), parl)
        paru = torch.where(go & (fp_new < 0), torch.minimum(paru, par), paru)
        par = torch.where(go, torch.maximum(parl, par + parc), par)
        search = go
    return step, par
