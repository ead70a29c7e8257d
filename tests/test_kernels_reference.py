"""The fast kernels against ntkcheck.kernels.reference (the definitions, one neuron and one
entry at a time in float64) over a Hypothesis grid: shapes with odd n, chunk sizes from one
neuron's worth upwards, 1–3 threads, radii, inputs of other norms where the code allows them."""
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntkcheck import parallel
from ntkcheck.kernels import activation_counts, certify, critical_radii, critical_radius, gram_matrix
from ntkcheck.kernels import reference as ref
from ntkcheck.kernels.attack import attack_pass

def threads_allowed(threads):
    """As if BLAS allowed ``threads`` threads: the kernels then split their passes that many ways."""
    return mock.patch.object(parallel, "blas_threads", lambda: threads)


CASES = dict(n=st.integers(2, 9), d=st.integers(1, 6), m=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
             threads=st.integers(1, 3), memory=st.sampled_from([1e-4, 0.01, 256.0]))


def _draw(n, d, m, seed, unit=True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    if not unit:
        X *= rng.uniform(0.2, 5.0, (n, 1))
    return X, rng.standard_normal((m, d)), rng


@settings(max_examples=40, deadline=None)
@given(**CASES, unit=st.booleans())
def test_gram_and_counts_equal_the_definitions(n, d, m, seed, threads, memory, unit):
    X, W, _ = _draw(n, d, m, seed, unit)
    with threads_allowed(threads):
        counts, H = activation_counts(X, W, working_memory_mb=memory), gram_matrix(X, W, working_memory_mb=memory)
    assert np.array_equal(counts, ref.counts(X, W))
    np.testing.assert_allclose(H, ref.gram(X, W), rtol=1e-13, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(**CASES, R=st.floats(0.0, 1.5))
def test_certificate_equals_the_definitions(n, d, m, seed, threads, memory, R):
    X, W0, _ = _draw(n, d, m, seed)
    with threads_allowed(threads):
        cert = certify(X, W0, R, memory)
    np.testing.assert_allclose(cert.H0, ref.gram(X, W0), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(cert.E, ref.bound(X, W0, R), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(cert.counts, ref.flippable(X, W0, R).sum(axis=0))


@settings(max_examples=40, deadline=None)
@given(**CASES, R=st.floats(0.0, 0.5), wider=st.floats(0.0, 1.5))
def test_the_certificates_band_is_the_definitions_and_changes_nothing_else(n, d, m, seed, threads, memory,
                                                                           R, wider):
    """certify with ``band``: the entries |w·x| ≤ band (gathered from the same pass, for the
    critical radii) against one float64 dot product per entry, and every other output bit for
    bit that of the pass without it; the critical radii from the band are those of their own pass."""
    X, W0, _ = _draw(n, d, m, seed)
    band = R + wider
    with threads_allowed(threads):
        plain = certify(X, W0, R, memory)
        cert = certify(X, W0, R, memory, band=band)
        radii = critical_radii(X, W0, [0.05, 0.3], 1e-12, memory)
        from_band = critical_radii(X, W0, [0.05, 0.3], 1e-12, memory, band=cert.band)
    for f in ("H0", "E", "counts", "SS", "active", "v_min_H0", "v_perron"):
        np.testing.assert_array_equal(getattr(cert, f), getattr(plain, f))
    assert (cert.lam_max_E, cert.lam_min_H0, cert.tol) == (plain.lam_max_E, plain.lam_min_H0, plain.tol)
    if not band > R:
        assert cert.band is None
        return
    assert from_band == radii
    P = np.abs(np.array([[float(w @ x) for x in X] for w in W0])).ravel()
    got_band, flat, vals = cert.band
    assert got_band == band
    np.testing.assert_allclose(vals, P[flat], rtol=0, atol=1e-14)  # (the rounding of a dot product of d terms)
    # the same entries, up to those within rounding of the band's edge
    near_edge = np.abs(P - band) <= 1e-14
    assert set(flat[~near_edge[flat]]) == set(np.flatnonzero((P <= band) & ~near_edge))


@settings(max_examples=30, deadline=None)
@given(**CASES, R=st.floats(0.01, 1.0), unit=st.booleans())
def test_an_attack_pass_returns_the_count_change_of_its_move(n, d, m, seed, threads, memory, R, unit):
    X, W0, rng = _draw(n, d, m, seed, unit)
    moves = np.zeros_like(W0)
    with threads_allowed(threads):
        dSS = attack_pass(X, X @ X.T, W0, R, rng.standard_normal(n), 1.0, memory, moves=moves)
    assert np.all(np.linalg.norm(moves, axis=1) <= R)
    np.testing.assert_array_equal(dSS, ref.count_change(X, W0, W0 + moves))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 6), d=st.integers(2, 5), m=st.integers(1, 25), seed=st.integers(0, 2**32 - 1),
       frac=st.floats(0.05, 0.9))
def test_critical_radius_equals_the_brute_force_scan(n, d, m, seed, frac):
    X, W0, _ = _draw(n, d, m, seed)
    top = float(np.linalg.eigvalsh(ref.bound(X, W0, 10.0))[-1])  # every sign flippable
    threshold = frac * top
    fast = critical_radius(X, W0, threshold, 0.0, 256.0)
    slow = ref.critical_radius(X, W0, threshold)
    # equal up to the rounding of ‖x_i‖ (≈ 1) in the candidates |w·x_i|/‖x_i‖, unless λ_max(E) at
    # that radius lies within rounding of the threshold
    if not (fast == slow or abs(fast - slow) <= 1e-13 * max(abs(fast), abs(slow))):
        at = float(np.linalg.eigvalsh(ref.bound(X, W0, min(fast, slow)))[-1])
        assert abs(at - threshold) <= 1e-12 * max(1.0, top)


def test_certify_refuses_inputs_that_are_not_unit():
    X, W0, _ = _draw(4, 3, 10, 0, unit=False)
    with pytest.raises(ValueError, match="unit norm"):
        certify(X, W0, 0.1, 256.0)
