"""BSS Eval metrics: the fast torch implementation against mir_eval, the Sound-of-Pixels skipping rule, the
mixture floor and the accumulator. Signals are 1 s at 11025 Hz to keep the file fast."""

import math

import numpy as np
import pytest
import torch

from tribert_hf.metrics import (
    SeparationMetrics,
    bss_eval_sources_torch,
    evaluate_separation,
    is_valid_mixture,
    separation_metrics_mir_eval,
)

SR = 11025
N = SR  # 1 s
TOL_DB = 0.01


def harmonic(rng, n=N, noise=0.003):
    """Music-like source: a harmonic tone with vibrato, a note envelope and a small noise floor."""
    t = np.arange(n) / SR
    f0 = rng.uniform(110, 660)
    phase = 2 * np.pi * f0 * (t + 0.002 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    x = sum(0.7**k * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 9))
    env = np.abs(np.sin(np.pi * rng.uniform(1, 3) * t + rng.uniform(0, np.pi))) ** 0.5
    return x * env + noise * rng.standard_normal(n)


def add_noise(rng, x, snr_db):
    noise = rng.standard_normal(x.shape)
    scale = np.sqrt((x**2).sum(-1, keepdims=True) / (noise**2).sum(-1, keepdims=True) / 10 ** (snr_db / 10))
    return x + scale * noise


def mir_eval_batch(refs, ests):
    out = [separation_metrics_mir_eval(r, e) for r, e in zip(refs, ests)]
    return {k: np.stack([o[k] for o in out]) for k in ("sdr", "sir", "sar")}


def case_white_noise(rng):
    refs = rng.standard_normal((3, 2, N))
    ests = np.stack([add_noise(rng, refs[b], snr) for b, snr in enumerate((0.0, 10.0, 30.0))])
    return refs, ests


def case_fir(rng):
    refs = np.stack([[harmonic(rng) + 0.1 * rng.standard_normal(N) for _ in range(2)] for _ in range(2)])
    ests = np.empty_like(refs)
    for b in range(2):
        for j in range(2):
            h = 0.2 * rng.standard_normal(32)
            h[0] = 1.0
            ests[b, j] = np.convolve(refs[b, j], h)[:N]
    return refs, add_noise(rng, ests, 20.0)


def case_interference(rng):
    refs = rng.standard_normal((2, 2, N))
    ests = refs + 0.2 * refs[:, ::-1] + 0.01 * rng.standard_normal(refs.shape)
    return refs, ests


def case_harmonic(rng):
    refs = np.stack([[harmonic(rng) for _ in range(2)] for _ in range(2)])
    ests = refs + rng.uniform(0.05, 0.3) * refs[:, ::-1]
    return refs, add_noise(rng, ests, 25.0)


def case_three_sources(rng):
    refs = np.stack([[harmonic(rng) for _ in range(3)]])
    ests = refs + 0.15 * np.roll(refs, 1, axis=1) + 0.05 * np.roll(refs, 2, axis=1)
    return refs, add_noise(rng, ests, 15.0)


CASES = {
    "white_noise_snrs": case_white_noise,
    "fir_32_taps": case_fir,
    "interference": case_interference,
    "harmonic": case_harmonic,
    "three_sources": case_three_sources,
}


@pytest.mark.parametrize("name", list(CASES))
def test_fast_matches_mir_eval(name):
    rng = np.random.default_rng(sorted(CASES).index(name))
    refs, ests = CASES[name](rng)
    expected = mir_eval_batch(refs, ests)
    sdr, sir, sar = bss_eval_sources_torch(torch.from_numpy(refs), torch.from_numpy(ests))
    assert sdr.shape == sir.shape == sar.shape == refs.shape[:2]
    assert sdr.dtype == torch.float64
    for key, got in (("sdr", sdr), ("sir", sir), ("sar", sar)):
        diff = np.abs(got.numpy() - expected[key]).max()
        assert diff < TOL_DB, f"{name}: max |{key} fast - mir_eval| = {diff:.3g} dB"


def test_float32_and_2d_input():
    rng = np.random.default_rng(10)
    refs, ests = case_interference(rng)
    refs32, ests32 = torch.from_numpy(refs[0]).float(), torch.from_numpy(ests[0]).float()
    sdr, sir, sar = bss_eval_sources_torch(refs32, ests32)  # 2-D: one mixture
    assert sdr.shape == (2,) and sdr.dtype == torch.float64
    expected = separation_metrics_mir_eval(refs32.numpy(), ests32.numpy())
    for key, got in (("sdr", sdr), ("sir", sir), ("sar", sar)):
        assert np.abs(got.numpy() - expected[key]).max() < TOL_DB


def test_invalid_mixture_rule():
    rng = np.random.default_rng(11)
    refs, ests = case_interference(rng)
    refs = np.concatenate([refs, refs[:1]])
    ests = np.concatenate([ests, ests[:1]])
    refs[1, 0] = 0.0  # all-zero reference
    ests[2, 1] = 1e-7  # estimate with sum(|x|) = 1.1e-3 > 1e-5: still valid
    assert separation_metrics_mir_eval(refs[1], ests[1]) is None
    assert is_valid_mixture(refs[2], ests[2])
    zero_est = ests[2].copy()
    zero_est[1] = 0.0
    assert separation_metrics_mir_eval(refs[2], zero_est) is None
    np.testing.assert_array_equal(is_valid_mixture(refs, ests), [True, False, True])
    mix = refs.sum(1)
    for backend in ("fast", "mir_eval"):
        res = evaluate_separation(refs, ests, mix, backend=backend)
        assert res["num_mixtures"] == 2 and res["num_skipped"] == 1
        np.testing.assert_array_equal(res["valid"], [True, False, True])
        assert np.isnan(res["sdr"][1]) and np.isnan(res["sdr_mixture"][1])
        assert np.isfinite(res["sdr"][[0, 2]]).all()


def test_evaluate_separation_mixture_floor_and_backends():
    rng = np.random.default_rng(12)
    refs = np.stack([[harmonic(rng) for _ in range(2)] for _ in range(2)])
    mix = refs.sum(1)
    oracle = add_noise(rng, refs, 30.0)
    fast = evaluate_separation(torch.from_numpy(refs), torch.from_numpy(oracle), torch.from_numpy(mix))
    ref = evaluate_separation(refs, oracle, mix, backend="mir_eval")
    assert fast["num_mixtures"] == 2 and fast["num_skipped"] == 0
    assert (fast["sdr_mixture"] < fast["sdr"] - 10).all()
    for key in ("sdr", "sir", "sar", "sdr_mixture", "sir_mixture"):
        assert fast[key].shape == (2,)
        assert np.abs(fast[key] - ref[key]).max() < TOL_DB, key
    # Per-mixture values are means over sources.
    np.testing.assert_allclose(fast["sdr"], fast["sdr_sources"].mean(1))
    # The mixture is in the span of the references: its artifact energy is round-off (capped, finite).
    assert np.isfinite(fast["sar_mixture"]).all() and (fast["sar_mixture"] > 100).all()


def test_separation_metrics_accumulates():
    rng = np.random.default_rng(13)
    refs, ests = case_interference(rng)
    refs2, ests2 = case_white_noise(rng)
    refs2[0, 1] = 0.0  # skipped
    metrics = SeparationMetrics()
    first = metrics.update(refs, ests, refs.sum(1))
    second = metrics.update(torch.from_numpy(refs2), torch.from_numpy(ests2), torch.from_numpy(refs2.sum(1)))
    out = metrics.compute()
    assert out["num_mixtures"] == 4 and out["num_skipped"] == 1
    for key in ("sdr", "sir", "sar", "sdr_mixture", "sir_mixture", "sar_mixture"):
        values = np.concatenate([first[key], second[key][1:]])
        assert math.isclose(out[key], values.mean(), rel_tol=1e-12), key
    metrics.reset()
    assert metrics.compute()["num_mixtures"] == 0 and math.isnan(metrics.compute()["sdr"])


def test_shape_errors():
    refs, ests = np.ones((2, 2, 1000)), np.ones((2, 3, 1000))
    with pytest.raises(ValueError, match=r"\(2, 2, 1000\).*\(2, 3, 1000\)"):
        bss_eval_sources_torch(torch.from_numpy(refs), torch.from_numpy(ests))
    with pytest.raises(ValueError, match=r"\(2, 1000\).*\(3, 1000\)"):
        separation_metrics_mir_eval(refs[0], ests[0])
    with pytest.raises(ValueError, match=r"\(2, 2, 1000\).*\(2, 3, 1000\)"):
        evaluate_separation(refs, ests, refs.sum(1))
    with pytest.raises(ValueError, match=r"mixture.shape=\(2, 999\)"):
        evaluate_separation(refs, refs, np.ones((2, 999)))
    with pytest.raises(ValueError, match="filter_length"):
        bss_eval_sources_torch(torch.ones(1, 2, 100), torch.ones(1, 2, 100))
    with pytest.raises(ValueError, match="backend"):
        evaluate_separation(refs, refs, refs.sum(1), backend="museval")


def _random_block_toeplitz(rng, batch, L, s):
    """Correlation blocks R(k) of random signals (so every block-Toeplitz matrix is positive definite):
    ``R[b, k + L - 1, i, j] = sum_t sig_i[t + k] sig_j[t]``, by NumPy's direct correlation."""
    sig = rng.standard_normal((batch, s, 4 * L))
    R = np.empty((batch, 2 * L - 1, s, s))
    for b in range(batch):
        for i in range(s):
            for j in range(s):
                full = np.correlate(sig[b, i], sig[b, j], mode="full")  # lags -(n-1) .. n-1
                R[b, :, i, j] = full[4 * L - L : 4 * L + L - 1]
    assert np.allclose(R[:, L - 1 - 1], R[:, L - 1 + 1].swapaxes(1, 2))  # R(-k) = R(k)^T
    return torch.from_numpy(R)


def test_levinson_quadratic_forms_match_dense_solve():
    from tribert_hf.metrics import block_toeplitz_quadratic_forms as forms

    rng = np.random.default_rng(0)
    L, m = 24, 3
    for s in (1, 2, 3):
        R = _random_block_toeplitz(rng, 4, L, s)
        y = torch.from_numpy(rng.standard_normal((4, L, s, m)))
        dense = forms(R, y, method="dense")
        # the dense solve is the textbook one: y^T T^-1 y with T assembled block by block
        T = torch.cat([torch.cat([R[:, c - a + L - 1] for c in range(L)], -1) for a in range(L)], -2)
        flat = y.reshape(4, L * s, m)
        direct = (flat * torch.linalg.solve(T, flat)).sum(1)
        torch.testing.assert_close(dense.sum(1), direct, rtol=1e-9, atol=0)
        fast = forms(R, y, method="levinson")  # torch (the path of GPU tensors)
        fast_np = forms(R.numpy(), y.numpy(), method="levinson")  # NumPy (the CPU path)
        assert isinstance(fast_np, np.ndarray)
        fast_np = torch.from_numpy(fast_np)
        assert fast.shape == fast_np.shape == dense.shape == (4, s, m)
        torch.testing.assert_close(fast.sum(1), dense.sum(1), rtol=1e-9, atol=0)
        torch.testing.assert_close(fast_np, fast, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(forms(R, y), fast, rtol=1e-10, atol=1e-12)  # "auto": the recursion, when it works
        # Block-diagonal systems: each component's own quadratic form, separately.
        eye = torch.eye(s, dtype=R.dtype)
        torch.testing.assert_close(
            forms(R * eye, y, method="levinson"), forms(R * eye, y, method="dense"), rtol=1e-9, atol=1e-12
        )
    # A singular system (all-zero correlations): the recursion breaks down, the least-squares fallback answers.
    R[0] = 0.0
    y[0] = 0.0
    out = forms(R, y)
    assert torch.isfinite(out).all() and (out[0] == 0).all()
    torch.testing.assert_close(out[1:].sum(1), forms(R[1:], y[1:], method="dense").sum(1), rtol=1e-9, atol=0)
    with pytest.raises(ValueError, match="method"):
        forms(R, y, method="cholesky")
