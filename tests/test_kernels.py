"""Closed forms against Monte Carlo, and the Gram matrix against a direct sum."""
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from ntkcheck import gram_matrix, h_infinity, kappa0, kappa1, lambda0
from ntkcheck.kernels import activation_counts


def unit_rows(rng, n, d):
    X = rng.standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.mark.parametrize("rho", [-0.95, -0.3, 0.0, 0.5, 0.99])
def test_arccos_kernels_match_monte_carlo(rho):
    rng = np.random.default_rng(1)
    d, N = 5, 400_000
    u = np.zeros(d); u[0] = 1
    v = np.zeros(d); v[0] = rho; v[1] = np.sqrt(1 - rho**2)
    g = rng.standard_normal((N, d))
    a, b = g @ u, g @ v
    ind = (a >= 0) & (b >= 0)
    relu = np.maximum(a, 0) * np.maximum(b, 0)
    # 5 standard errors: a wrong formula is off by far more at this N
    assert abs(ind.mean() - kappa0(rho)) < 5 * ind.std() / np.sqrt(N)
    assert abs(relu.mean() - kappa1(rho)) < 5 * relu.std() / np.sqrt(N)


def test_relu_kernel_on_the_sphere_is_kappa1_over_d():
    """E_x[σ(u·x)σ(v·x)] = κ1(ρ)/d for x uniform on S^{d−1} (MATH.md)."""
    rng = np.random.default_rng(2)
    d, N, rho = 7, 400_000, 0.4
    u = np.zeros(d); u[0] = 1
    v = np.zeros(d); v[0] = rho; v[1] = np.sqrt(1 - rho**2)
    x = unit_rows(rng, N, d)
    f = np.maximum(x @ u, 0) * np.maximum(x @ v, 0)
    assert abs(f.mean() - kappa1(rho) / d) < 5 * f.std() / np.sqrt(N)


def test_h_infinity_is_the_limit_of_h_at_initialisation():
    """H∞ against the average of H(W(0)) over 2^20 neurons: entries within 5 standard errors."""
    rng = np.random.default_rng(3)
    n, d, m = 8, 6, 1 << 20
    X = unit_rows(rng, n, d)
    W = rng.standard_normal((m, d))
    H = gram_matrix(X, W)
    Hinf = h_infinity(X)
    # each entry of H is G_ij × (mean of m Bernoulli(κ0)) : std ≤ |G_ij|·sqrt(κ0(1−κ0)/m)
    G = X @ X.T
    k0 = kappa0(np.clip(G, -1, 1))
    se = np.abs(G) * np.sqrt(k0 * (1 - k0) / m) + 1e-15
    assert np.all(np.abs(H - Hinf) <= 5 * se)
    # and a wrong kernel (κ1 in place of κ0) is far outside that band
    assert np.max(np.abs(H - G * kappa1(G)) / se) > 50


def test_gram_matrix_equals_the_direct_sum_over_neurons():
    rng = np.random.default_rng(4)
    n, d, m = 7, 4, 300
    X = rng.standard_normal((n, d))  # not unit: the formula holds for any rows
    W = rng.standard_normal((m, d))
    direct = np.zeros((n, n))
    for k in range(m):  # the naive loop, as reference only
        s = (X @ W[k] >= 0).astype(float)
        direct += np.outer(s, s) * (X @ X.T)
    direct /= m
    np.testing.assert_allclose(gram_matrix(X, W), direct, rtol=1e-13, atol=1e-14)


def test_gram_matrix_does_not_depend_on_the_chunk_size():
    rng = np.random.default_rng(5)
    X = unit_rows(rng, 30, 5)
    W = rng.standard_normal((5000, 5))
    a = gram_matrix(X, W, working_memory_mb=1e-3)  # forces 64-neuron chunks
    b = gram_matrix(X, W, working_memory_mb=512)
    assert np.array_equal(a, b)
    counts = activation_counts(X, W, working_memory_mb=1e-3)
    assert np.array_equal(counts, np.round(counts))  # integer counts, exactly


def test_lambda0_error_bound_covers_perturbation_of_the_data():
    """λ0 moves by no more than its error bound when the data move by one rounding step."""
    rng = np.random.default_rng(6)
    X = unit_rows(rng, 40, 8)
    lam = lambda0(X)
    assert lam.certified_positive and lam.value > 1e-3
    assert lam.error < 1e-10  # no near-parallel pair: the bound is tight
    Xp = X * (1 + 2 * np.finfo(float).eps * rng.choice([-1, 1], size=X.shape))
    assert abs(lambda0(Xp).value - lam.value) <= lam.error


def test_lambda0_is_zero_up_to_rounding_with_a_duplicate_row():
    rng = np.random.default_rng(7)
    X = unit_rows(rng, 20, 5)
    X[13] = X[4]
    lam = lambda0(X)
    assert not lam.certified_positive
    assert lam.reported == 0.0
    assert abs(lam.value) <= lam.error


def test_h_infinity_is_psd_and_has_half_on_the_diagonal():
    rng = np.random.default_rng(8)
    X = unit_rows(rng, 25, 3)
    H = h_infinity(X)
    np.testing.assert_allclose(np.diag(H), 0.5, atol=1e-15)
    assert np.linalg.eigvalsh(H)[0] > 0


def _direct_counts(X, W):
    S = (W @ X.T >= 0).astype(np.float64)  # the float64 product's signs: the reference
    return S.T @ S


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_counts_are_exact_and_the_same_for_any_split_over_threads(monkeypatch, threads):
    """The threaded path (blocks of inputs, neurons split over threads) against the direct
    float64 count, whatever the number of threads and the chunk size."""
    from ntkcheck import parallel

    monkeypatch.setattr(parallel, "blas_threads", lambda: threads)
    rng = np.random.default_rng(6)
    X = unit_rows(rng, 301, 10)
    W = rng.standard_normal((1500, 10))
    assert parallel.work_threads(301, 1500) == threads  # the split under test is really taken
    direct = _direct_counts(X, W)
    assert np.array_equal(activation_counts(X, W), direct)
    assert np.array_equal(activation_counts(X, W, working_memory_mb=0.5), direct)  # several chunks
    H = gram_matrix(X, W)
    monkeypatch.setattr(parallel, "blas_threads", lambda: 1)
    assert np.array_equal(gram_matrix(X, W), H)  # the same numbers, threads or not


def test_gram_matrix_is_the_same_with_one_blas_thread_or_many():
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(7)
    X = unit_rows(rng, 300, 10)  # a size where a threaded X Xᵀ rounds differently
    W = rng.standard_normal((3000, 10))
    H = gram_matrix(X, W)
    with threadpool_limits(1):
        assert np.array_equal(gram_matrix(X, W), H)


def test_counts_accumulate_in_float64_beyond_the_float32_range(monkeypatch):
    """Above 2^24 neurons the running sum is float64; shrink the limit to exercise that path."""
    from ntkcheck import memory
    from ntkcheck.kernels import gram as network

    monkeypatch.setattr(network, "MAX_EXACT_F32", 1000)  # the running sum's type
    monkeypatch.setattr(memory, "MAX_EXACT_F32", 1000)  # and the chunk's cap
    rng = np.random.default_rng(8)
    X = unit_rows(rng, 40, 5)
    W = rng.standard_normal((5000, 5))
    got = activation_counts(X, W, working_memory_mb=0.01, dtype=None)
    assert got.dtype == np.float64
    assert np.array_equal(got, _direct_counts(X, W))


def test_signs_near_zero_follow_the_float64_product():
    """Neurons almost orthogonal to an input: float32 alone would get some signs wrong."""
    from ntkcheck.kernels.gram import sign_pass

    rng = np.random.default_rng(9)
    X = unit_rows(rng, 50, 20)
    W = rng.standard_normal((2000, 20))
    W -= np.outer(W @ X[0], X[0])  # w·x_0 = 0 up to rounding, both signs
    W += rng.standard_normal((2000, 1)) * 1e-9 * X[0]
    P = W @ X.T
    S = np.empty((2000, 50), dtype=np.float32)
    sign_pass(W, X, X.astype(np.float32), S)
    assert np.array_equal(S, (P >= 0).astype(np.float32))
    naive = (W.astype(np.float32) @ X.astype(np.float32).T) >= 0
    assert np.any(naive != (P >= 0))  # the case is hard: float32 signs alone differ


@pytest.mark.parametrize("block_bytes", [2 << 20, 4 * 64 * 37])
def test_sign_pass_near_set_is_exact_and_the_same_for_any_split(monkeypatch, block_bytes):
    """The near set |w·x| ≤ radius and its values against the float64 product, with the rows in
    one block or in many (some wide enough to be computed in float64, some not), on 1, 2 or 3
    threads: the same indices and the same values whatever the split."""
    from ntkcheck import parallel
    from ntkcheck.kernels import gram as network
    from ntkcheck.kernels.gram import exact_entries, float32_error_bound, sign_pass

    monkeypatch.setattr(network, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(10)
    n, d, m = 64, 12, 3000
    X = unit_rows(rng, n, d)
    W = rng.standard_normal((m, d))
    W[1000:1400] *= 1e-3  # these rows lie mostly within the radius: their blocks go to float64
    radius = 0.02
    P = W @ X.T
    want = np.flatnonzero(np.abs(P) <= radius)
    tau = float(float32_error_bound(W, X))
    runs = []
    for threads in (1, 2, 3):
        S = np.empty((m, n), dtype=np.float32)
        with parallel.single_blas(threads):
            flat, vals = sign_pass(W, X, X.astype(np.float32), S, radius=radius, threads=threads, values=True)
        assert np.array_equal(S, (P >= 0).astype(np.float32))
        assert np.array_equal(flat, want)
        np.testing.assert_allclose(vals, np.abs(P).ravel()[want], rtol=0, atol=tau)
        runs.append((flat, vals))
        S2 = np.empty((m, n), dtype=np.float32)
        with parallel.single_blas(threads):
            flat2, exact = sign_pass(W, X, X.astype(np.float32), S2, radius=radius, threads=threads,
                                     exact_values=True)
        assert np.array_equal(flat2, want) and np.array_equal(S2, S)
        assert np.array_equal(exact, np.abs(exact_entries(W, X, want, n)))  # the float64 dot products
    if block_bytes < 2 << 20:
        assert network.block_rows(n) == 37 and m // 37 > 3  # many blocks: the split is exercised
    for flat, vals in runs[1:]:
        assert np.array_equal(flat, runs[0][0]) and np.array_equal(vals, runs[0][1])


@settings(max_examples=200)
@given(rows=st.integers(0, 3_000_000), n=st.integers(1, 3000))
def test_sign_pass_blocks_fit_the_cache_budget_and_split_evenly_over_two_threads(rows, n):
    """A pass's blocks: they cover the rows in order, none is longer than block_rows(n), their
    lengths differ by at most one row, and there is an even number of them when there are
    several, so that two threads (which take whole blocks) get equal shares to a row or so."""
    from ntkcheck.kernels.gram import _blocks, block_rows
    bounds = _blocks(rows, n)
    sizes = np.diff(bounds)
    k = sizes.size
    assert bounds[0] == 0 and bounds[-1] == rows and np.all(sizes >= 0)
    assert sizes.max() <= max(1, block_rows(n))
    assert sizes.max() - sizes.min() <= 1
    assert k == 1 or (k % 2 == 0 and sizes.min() > 0)
    assert abs(int(sizes[: k // 2].sum()) - int(sizes[k // 2:].sum())) <= 1 or k == 1


@settings(max_examples=200)
@given(rows=st.integers(0, 6), cols=st.integers(1, 5), seed=st.integers(0, 2**31),
       special=st.sampled_from([None, np.nan, np.inf, -np.inf, 0.0, 1e-300, -1e300]))
def test_row_maxima_and_the_finite_test_without_temporaries(rows, cols, seed, special):
    """gram's _row_top (two reductions, no array of A's size) against |A|.max(axis=1), and
    unit_rows refusing exactly the arrays that are not all finite, with NaN, ±∞, zero and
    extreme entries and rows."""
    from ntkcheck.kernels.gram import _row_top, unit_rows
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((rows, cols)) * 10.0 ** rng.integers(-50, 50, (rows, 1))
    if special is not None and rows:
        A[rng.integers(rows), rng.integers(cols)] = special
        A[rng.integers(rows)] = 0.0
    want = np.abs(A).max(axis=1) if A.size else np.zeros(rows)
    np.testing.assert_array_equal(_row_top(A), want)
    if np.all(np.isfinite(A)):
        unit_rows(A)
    else:
        with pytest.raises(ValueError, match="needs finite X and W"):
            unit_rows(A)


@settings(max_examples=300)
@given(rows=st.integers(0, 6), cols=st.integers(1, 12), seed=st.integers(0, 2**31),
       special=st.sampled_from([None, np.nan, np.inf, 0.0, 2.0**-60, 2.0**-61, 2.0**60, 2.0**61, 5e-324]))
def test_the_whole_array_range_test_is_the_row_by_row_one(rows, cols, seed, special):
    """gram's _safe_norm (the row norms, then the smallest rows entry by entry) against the
    rule row by row in Python: every row zero or with max |entry| in [2^-60, 2^60], all finite;
    rows scaled by powers of two across and around both ends of the range, and single extreme
    entries. It may leave a safe array unshown (a row whose norm, not its largest entry, passes
    2^60), never show an unsafe one; when it shows one it returns the largest row norm. The
    check built on it, require_safe_rows, refuses exactly the unsafe arrays."""
    from ntkcheck.kernels.gram import SAFE_EXPONENT, _safe_norm, require_safe_rows
    rng = np.random.default_rng(seed)
    A = rng.uniform(-1, 1, (rows, cols)) * 2.0 ** rng.integers(-66, 66, (rows, 1)).astype(float)
    if special is not None and rows:
        r = rng.integers(rows)
        A[r] = 0.0
        A[r, rng.integers(cols)] = special
    lo, hi = 2.0**-SAFE_EXPONENT, 2.0**SAFE_EXPONENT
    want = all(all(math.isfinite(x) for x in row) and (max(abs(x) for x in row) == 0
                                                        or lo <= max(abs(x) for x in row) <= hi)
               for row in A.tolist())
    got = _safe_norm(A)
    if not want:
        assert got is None
    if got is not None:
        norms = [math.sqrt(math.fsum(x * x for x in row)) for row in A.tolist()]
        assert got == pytest.approx(max(norms, default=0.0), rel=1e-15, abs=0)
    if all(max((abs(x) for x in row), default=0.0) <= hi / 4 for row in A.tolist()):
        assert (got is not None) == want  # (every norm ≤ √cols·2^58 ≤ 2^60: shown whenever safe)
    if want:
        require_safe_rows(A, "A")
    else:
        with pytest.raises(ValueError):
            require_safe_rows(A, "A")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["X", "W"])
def test_counts_and_gram_refuse_non_finite_inputs(bad, where):
    """A NaN has no sign, so activation_counts (which returned counts for a NaN weight) and
    gram_matrix refuse non-finite X or W with a ValueError instead of a number."""
    rng = np.random.default_rng(0)
    X, W = rng.standard_normal((5, 3)), rng.standard_normal((7, 3))
    (X if where == "X" else W)[1, 2] = bad
    for f in (activation_counts, gram_matrix):
        with pytest.raises(ValueError, match="needs finite X and W"):
            f(X, W)
    if where == "X":  # (λ0's eigensolver said only "Eigenvalues did not converge")
        for f in (h_infinity, lambda0):
            with pytest.raises(ValueError, match="needs finite X"):
                f(X)
