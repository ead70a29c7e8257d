"""The certified bound of Lemma 2.3 against sampled perturbations, and the attack against it."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntkcheck import gram_matrix
from ntkcheck.kernels import certificate as certificate_mod
from ntkcheck.kernels import attack, certify, critical_radii, critical_radius
from ntkcheck.kernels.eig import bordered_extremes, eigenvalue_at, extreme_eigenvalues, may_lie_below
from ntkcheck.kernels.flippable import pair_counts


def setup(seed=0, n=12, d=4, m=600):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    W0 = rng.standard_normal((m, d))
    return rng, X, W0


def ball_points(rng, X, W0, R, count):
    """Points of the ball: random directions, and pushes that flip the most signs."""
    m, d = W0.shape
    for t in range(count):
        if t % 2 == 0:
            U = rng.standard_normal((m, d))
        else:  # push each neuron towards its nearest hyperplane x_i (most flips)
            P = W0 @ X.T
            i = np.argmin(np.abs(P), axis=1)
            U = -np.sign(P[np.arange(m), i])[:, None] * X[i]
        U /= np.linalg.norm(U, axis=1, keepdims=True)
        scale = rng.uniform(0.5, 1.0, size=(m, 1)) * R * (1 - 1e-12)
        yield W0 + U * scale


@pytest.mark.parametrize("R", [0.01, 0.05, 0.3])
def test_certified_bound_dominates_every_sampled_perturbation(R):
    rng, X, W0 = setup()
    cert = certify(X, W0, R, 64)
    H0 = gram_matrix(X, W0)
    np.testing.assert_array_equal(cert.H0, H0)
    worst = 0.0
    for W in ball_points(rng, X, W0, R, 40):
        assert np.all(np.linalg.norm(W - W0, axis=1) <= R)
        H = gram_matrix(X, W)
        dH = H - H0
        assert np.all(np.abs(dH) <= cert.E + 1e-14)  # entrywise
        norm = np.linalg.norm(dH, 2)
        worst = max(worst, norm)
        assert norm <= cert.lam_max_E + 1e-12
        assert np.linalg.eigvalsh(H)[0] >= cert.lam_min_H0 - cert.lam_max_E - 1e-12
    assert worst > 0  # the samples did move some signs, so the comparison was not vacuous


@pytest.mark.parametrize("R", [0.02, 0.2, 1.0])
def test_attack_is_a_valid_point_of_the_ball_and_below_the_certificate(R):
    rng, X, W0 = setup(seed=1)
    cert = certify(X, W0, R, 64)
    att = attack(X, W0, R, cert, iterations=3, working_memory_mb=64)
    assert att.norm_dH <= cert.lam_max_E + 1e-12
    assert att.lam_min >= cert.lam_min_H0 - cert.lam_max_E - 1e-12
    assert att.lam_min <= cert.lam_min_H0 + 1e-15
    # the attack beats random points of the ball (it is a search, not a sample)
    H0 = gram_matrix(X, W0)
    sampled = max(np.linalg.norm(gram_matrix(X, W) - H0, 2) for W in ball_points(rng, X, W0, R, 10))
    assert att.norm_dH >= sampled


@pytest.mark.parametrize("seed", [0, 1])
def test_the_attacks_cholesky_test_skips_only_what_could_not_improve_it(seed, monkeypatch):
    """The norm searches test, by a Cholesky factor, whether λ_min of their H(W) can lie below
    the best found and solve only then: the attack's figures and points are those of solving
    every time (bit for bit), and the test did skip some solves."""
    from ntkcheck.kernels import attack as attack_fn  # (the function; the module is below)
    import sys
    mod = sys.modules["ntkcheck.kernels.attack"]
    _, X, W0 = setup(seed=seed, n=40, d=6, m=800)
    R = 0.05
    cert = certify(X, W0, R, 64)
    skipped = []

    def counted(M, mu):
        out = may_lie_below(M, mu)
        skipped.append(not out)
        return out

    monkeypatch.setattr(mod, "may_lie_below", counted)
    fast = attack_fn(X, W0, R, cert, 3, 64, keep_points=True)
    monkeypatch.setattr(mod, "may_lie_below", lambda M, mu: True)
    full = attack_fn(X, W0, R, cert, 3, 64, keep_points=True)
    assert (fast.norm_dH, fast.lam_min) == (full.norm_dH, full.lam_min)
    np.testing.assert_array_equal(fast.W_lam_min, full.W_lam_min)
    np.testing.assert_array_equal(fast.W_norm, full.W_norm)
    assert len(skipped) == 6 and any(skipped)
    assert full.lam_min < cert.lam_min_H0  # signs did change: the comparison was not vacuous


@pytest.mark.parametrize("R", [0.002, 0.01, 0.05])
def test_an_attack_search_that_repeats_its_change_stops_with_what_iterating_on_reports(R, monkeypatch):
    """A search whose pass repeats the last pass's count change stops (a fixed point: the same
    H(W), eigenpairs and next vector): its figures and points are those of iterating every
    time (bit for bit); at the smallest radius the stop did happen, at the largest it did not,
    so the comparison covers both."""
    import sys
    mod = sys.modules["ntkcheck.kernels.attack"]
    _, X, W0 = setup(seed=3, n=40, d=6, m=800)
    cert = certify(X, W0, R, 64)
    stops = []
    repeats = mod._repeats

    def counted(*args):
        stops.append(repeats(*args))
        return stops[-1]

    monkeypatch.setattr(mod, "_repeats", counted)
    fast = attack(X, W0, R, cert, 4, 64, keep_points=True)
    monkeypatch.setattr(mod, "_repeats", lambda *args: False)
    full = attack(X, W0, R, cert, 4, 64, keep_points=True)
    assert (fast.norm_dH, fast.lam_min) == (full.norm_dH, full.lam_min)
    np.testing.assert_array_equal(fast.W_lam_min, full.W_lam_min)
    np.testing.assert_array_equal(fast.W_norm, full.W_norm)
    assert full.norm_dH > 0  # signs did change: the comparison was not vacuous
    if R == 0.002:
        assert any(stops)
    if R == 0.05:
        assert not any(stops)


@settings(max_examples=60)
@given(n=st.integers(1, 30), gap=st.floats(-1.0, 1.0), seed=st.integers(0, 2**31))
def test_may_lie_below_against_the_full_decomposition(n, gap, seed):
    """may_lie_below(M, mu) is False only when λ_min(M) > mu (up to rounding), and True
    whenever λ_min(M) < mu by more than rounding; mu is placed at λ_min + gap·spread."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    M = A @ A.T / n - rng.uniform(0, 1) * np.eye(n)
    w = np.linalg.eigvalsh(M)
    spread = max(float(w[-1] - w[0]), 1.0)
    mu = float(w[0]) + gap * spread
    tol = 64 * n * np.finfo(float).eps * float(np.abs(M).sum(axis=1).max())
    before = M.copy()
    got = may_lie_below(M, mu)
    np.testing.assert_array_equal(M, before)  # M itself is not changed
    if not got:
        assert w[0] > mu - tol
    if w[0] < mu - tol:
        assert got


def test_attack_finds_nothing_when_no_sign_can_flip():
    _, X, W0 = setup(seed=2)
    R = 0.5 * np.abs(W0 @ X.T).min()
    cert = certify(X, W0, R, 64)
    assert cert.lam_max_E == 0 and cert.active.size == 0
    att = attack(X, W0, R, cert, 3, 64)
    assert att.norm_dH == 0 and att.lam_min == pytest.approx(cert.lam_min_H0)


@pytest.mark.parametrize("thr", [0.05, 0.6])  # a narrow band of flippable entries, and a wide one
def test_critical_radius_is_the_edge_of_the_certificate(thr):
    _, X, W0 = setup(seed=3, m=2000)
    tol = 1e-12
    Rc = critical_radius(X, W0, thr, tol, 64)
    assert 0 < Rc < np.inf
    below = certify(X, W0, Rc * (1 - 1e-9), 64)
    at = certify(X, W0, Rc, 64)
    assert below.lam_max_E < thr - tol <= at.lam_max_E
    # chunking does not change it
    assert critical_radius(X, W0, thr, tol, 1e-3) == Rc


def test_critical_radii_share_one_pass_and_each_is_its_edge(monkeypatch):
    """Several thresholds from one sign pass (taken to the largest cap): each result is the
    single search's, the exact edge of the certificate; a threshold ≤ 0 gives 0 and one above
    1 needs every entry (infinite first cap). The partial sort (only the entries the averaged
    bound can reach) must not change a result: with its prefix bound forced too small the
    search falls back to sorting all entries and finds the same radii."""
    _, X, W0 = setup(seed=5, m=3000)
    tol = 1e-12
    thrs = [0.6, 0.05, -0.1, 3.0]
    radii = critical_radii(X, W0, thrs, tol, 64)
    assert radii == [critical_radius(X, W0, t, tol, 64) for t in thrs]
    assert radii[2] == 0.0
    for t, Rc in zip(thrs, radii):
        if t > 0:
            assert 0 < Rc < np.inf
            assert certify(X, W0, Rc * (1 - 1e-9), 64).lam_max_E < t - tol <= certify(X, W0, Rc, 64).lam_max_E
    monkeypatch.setattr(certificate_mod, "prefix_bound", lambda total, g, size: 1)
    assert critical_radii(X, W0, thrs, tol, 64) == radii


@pytest.mark.parametrize("guess, passes", [(1e-6, 2), (4.0, 1), (1e9, 1)])
def test_critical_radii_do_not_depend_on_the_first_bands_guess(guess, passes, monkeypatch):
    """The sign pass goes first to a guessed radius; a search whose certificate still holds
    with that whole band is done again up to its cap. A guess far too short (a second pass),
    the default one and one beyond the caps give the same radii, each the certificate's edge."""
    _, X, W0 = setup(seed=6, n=30, d=5, m=4000)
    thrs = [0.05, 0.3, -0.1]
    tol = 1e-12
    calls = []
    band = certificate_mod._band

    def counted(*args):
        calls.append(args[2])  # the band's radius
        return band(*args)

    monkeypatch.setattr(certificate_mod, "_band", counted)
    monkeypatch.setattr(certificate_mod, "_GUESS", guess)
    radii = critical_radii(X, W0, thrs, tol, 64)
    assert len(calls) == passes
    monkeypatch.undo()
    assert radii == critical_radii(X, W0, thrs, tol, 64)
    for t, Rc in zip(thrs[:2], radii):
        assert certify(X, W0, Rc * (1 - 1e-9), 64).lam_max_E < t - tol <= certify(X, W0, Rc, 64).lam_max_E
        assert Rc <= calls[-1]  # inside the last band
    if guess == 4.0:  # the default guess's band is narrower than the caps' (it saves work)
        full = []
        monkeypatch.setattr(certificate_mod, "_band", lambda *a: full.append(a[2]) or band(*a))
        monkeypatch.setattr(certificate_mod, "_GUESS", 1e9)
        critical_radii(X, W0, thrs, tol, 64)
        assert calls[0] < full[0] / 4


def test_the_band_guess_stops_where_its_inputs_diagonal_bound_is_lost():
    """With orthonormal inputs (mean(g) = 1) the guess's c = 4·t·m/2 would be twice the ⌈t·m⌉
    signs at which an input's E_ii alone reaches t; the guess stops there (half of all entries
    at t = 1/4 otherwise), and the radii found from that band are the certificate's edges."""
    from ntkcheck.kernels import band_guess
    rng = np.random.default_rng(23)
    d, m = 6, 4000
    X = np.eye(d)
    W0 = rng.standard_normal((m, d))
    t = 0.25
    k = int(np.ceil(t * m))
    assert band_guess(X, W0, [t, 0.1]) == np.sort(np.abs(W0[:, 0]))[k - 1]  # input 0: the first of largest norm
    radii = critical_radii(X, W0, [t, 0.1], 1e-12, 64)
    for thr, Rc in zip([t, 0.1], radii):
        assert certify(X, W0, Rc * (1 - 1e-9), 64).lam_max_E < thr - 1e-12 <= certify(X, W0, Rc, 64).lam_max_E


def test_critical_radii_are_the_same_with_the_sparse_pair_counts(monkeypatch):
    """More same-neuron pairs than the memory budget allows: AᵀA from a sparse A at each
    step instead of the pairs' counts; the same radii."""
    _, X, W0 = setup(seed=5, m=3000)
    thrs = [0.6, 0.05, 3.0]
    radii = critical_radii(X, W0, thrs, 1e-12, 64)
    monkeypatch.setattr(certificate_mod, "_PAIR_BYTES", 1 << 40)  # no pair fits the budget
    assert critical_radii(X, W0, thrs, 1e-12, 64) == radii


@settings(max_examples=60)
@given(n=st.integers(1, 7), m=st.integers(1, 9), size=st.integers(0, 40), seed=st.integers(0, 2**31))
def test_the_pair_counts_are_the_gram_of_every_prefix(n, m, size, seed):
    """(AᵀA) of each prefix of a list of distinct entries (k, i), from the same-neuron pairs,
    against A formed densely for that prefix."""
    rng = np.random.default_rng(seed)
    flat = rng.permutation(m * n)[:size]
    rows, cols = np.divmod(flat, n)
    pairs = int((np.bincount(rows, minlength=m).astype(np.int64) ** 2).sum())  # Σ_k s_k²
    assert not certificate_mod._PairCounts(rows, cols, n, pairs - 1).ok
    pc = certificate_mod._PairCounts(rows, cols, n, pairs)
    assert pc.ok and pc.admit.size == pairs
    for upto in range(rows.size + 1):
        A = np.zeros((m, n))
        A[rows[:upto], cols[:upto]] = 1.0
        assert np.array_equal(pc.gram(upto), A.T @ A)


@settings(max_examples=60)
@given(n=st.integers(1, 9), m=st.integers(1, 9), size=st.integers(0, 50), seed=st.integers(0, 2**31))
def test_the_bound_times_a_vector_is_e_formed_densely_times_it(n, m, size, seed):
    """The critical radius's power steps apply E = |Gs| ∘ (c_i + c_j − (AᵀA)_ij) of a prefix
    without forming it (rows of the inputs with c_i > 0, and the prefix's pairs): against E
    formed entry by entry from a dense A, for every prefix, to rounding."""
    rng = np.random.default_rng(seed)
    flat = rng.permutation(m * n)[:size]
    rows, cols = np.divmod(flat, n)
    X = rng.standard_normal((n, 3))
    absGs = np.abs(X @ X.T) / m
    pc = certificate_mod._PairCounts(rows, cols, n, 10**6)
    x = rng.uniform(0.1, 1.0, n)
    for upto in range(rows.size + 1):
        A = np.zeros((m, n))
        A[rows[:upto], cols[:upto]] = 1.0
        c = A.sum(axis=0)
        AA = A.T @ A
        E = np.array([[absGs[i, j] * (c[i] + c[j] - AA[i, j]) for j in range(n)] for i in range(n)])
        times = pc.bound_times(upto, absGs, c)
        if times is None:  # (more pairs than pay: E is formed instead)
            assert pc.admit.searchsorted(upto) > n * n // 4
            continue
        np.testing.assert_allclose(times(x), E @ x, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("thr", [0.02, 0.3])
def test_critical_radius_is_exact_when_inputs_have_different_quantiles(thr):
    """The first cap is taken over a few inputs only (an upper bound on the one over all
    inputs); with anisotropic weights the inputs' quantiles of |w·x_i| differ widely, and the
    result must still be the exact edge of the certificate."""
    rng = np.random.default_rng(21)
    n, d = 30, 5
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    W0 = rng.standard_normal((3000, d)) * np.array([0.05, 0.3, 1.0, 3.0, 10.0])
    tol = 1e-12
    Rc = critical_radius(X, W0, thr, tol, 64)
    assert 0 < Rc < np.inf
    assert certify(X, W0, Rc * (1 - 1e-9), 64).lam_max_E < thr - tol <= certify(X, W0, Rc, 64).lam_max_E


@pytest.mark.parametrize("small", [0, 11])
def test_critical_radius_where_the_diagonal_bound_is_the_edge(small):
    """Orthonormal inputs: E is diagonal, λ_max(E) = max_i c_i/m, so the edge is exactly the
    diagonal bound's cap, attained at the input whose |w·x_i| are smallest: the first input
    (among the few the first cap is taken over: the cap is the edge itself) or the last one
    (outside them: the cap is only an upper bound)."""
    rng = np.random.default_rng(22)
    d = 12
    X = np.eye(d)
    scales = np.linspace(1.0, 3.0, d)
    scales[small] = 0.01
    W0 = rng.standard_normal((4000, d)) * scales
    thr, tol = 0.1, 1e-12
    Rc = critical_radius(X, W0, thr, tol, 64)
    # the k-th smallest |w_k,12| with k = ⌈(thr − tol)·m⌉ is where c_12/m reaches thr − tol
    k = int(np.ceil((thr - tol) * 4000))
    assert Rc == np.sort(np.abs(W0[:, small]))[k - 1]
    assert certify(X, W0, Rc * (1 - 1e-9), 64).lam_max_E < thr - tol <= certify(X, W0, Rc, 64).lam_max_E


def test_attack_does_not_depend_on_chunk_size():
    _, X, W0 = setup(seed=4, m=3000)
    R = 0.1
    a = attack(X, W0, R, certify(X, W0, R, 1e-3), 2, 1e-3)
    b = attack(X, W0, R, certify(X, W0, R, 256), 2, 256)
    assert a.norm_dH == pytest.approx(b.norm_dH, rel=1e-12)
    assert a.lam_min == pytest.approx(b.lam_min, rel=1e-12)


@pytest.mark.parametrize("R", [0.003, 0.05, 2.0])  # sparse flippable set, and a dense one
def test_certificate_matrices_equal_their_definition(R):
    """H0 and E from the fast pass (float32 products, exact signs, sparse or dense AᵀA) against
    the float64 definitions, entry for entry."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((150, 6))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    W0 = rng.standard_normal((4000, 6))
    P = W0 @ X.T
    S = (P >= 0).astype(float)
    A = (np.abs(P) <= R).astype(float)
    G = X @ X.T
    c = A.sum(axis=0)
    cert = certify(X, W0, R, 0.5)  # several chunks
    np.testing.assert_array_equal(cert.SS, S.T @ S)
    np.testing.assert_array_equal(cert.counts, c)
    np.testing.assert_array_equal(np.sort(cert.active), np.flatnonzero(A.any(axis=1)))
    # X Xᵀ/m is formed as (X/√m)(X/√m)ᵀ: entrywise within the rounding of a dot product of
    # length d, (d + 2)·eps·|x_i||x_j|/m (unit rows), of the float64 definition, times the count
    rounding = (6 + 2) * np.finfo(float).eps / 4000
    count_E = c[:, None] + c[None, :] - A.T @ A
    assert np.all(np.abs(cert.H0 - G * (S.T @ S) / 4000) <= rounding * (S.T @ S) + 1e-15 * np.abs(cert.H0))
    assert np.all(np.abs(cert.E - np.abs(G) * count_E / 4000) <= rounding * count_E + 1e-15 * cert.E)
    np.testing.assert_array_equal(cert.H0, gram_matrix(X, W0))  # the same computation, bit for bit
    assert cert.lam_max_E == pytest.approx(np.linalg.eigvalsh(cert.E)[-1], abs=cert.tol)


@pytest.mark.parametrize("R,d,scaled", [(0.002, 8, False), (0.01, 8, False), (0.5, 8, False),
                                        (0.05, 200, False), (0.03, 8, True), (0.2, 200, True)])
def test_attack_pass_returns_the_exact_count_change_of_a_point_of_the_ball(R, d, scaled):
    """The pushes chosen in float32 are a heuristic; what the pass returns must be exactly
    S'ᵀS' − SᵀS for the W it tried, and that W must lie in the ball (few or many sign changes,
    near sets so sparse their dot products are gathered one by one, sparse, and dense, d < n and
    d ≥ n, inputs of norm 1 or not: a push of length R
    can change w·x_i by R‖x_i‖, so the near set must widen with ‖x_i‖)."""
    from ntkcheck.kernels.attack import attack_pass
    from ntkcheck.kernels import activation_counts

    rng = np.random.default_rng(12)
    n = 120
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    if scaled:
        X *= rng.uniform(0.3, 3.0, n)[:, None]
    W0 = rng.standard_normal((3000, d))
    v = rng.standard_normal(n)
    for sign in (1.0, -1.0):
        moves = np.full_like(W0, np.nan)
        dSS = attack_pass(X, X @ X.T, W0, R, v, sign, 0.3, moves=moves)
        assert np.all(np.isfinite(moves)) and np.all(np.linalg.norm(moves, axis=1) <= R)
        assert np.any(moves != 0)
        np.testing.assert_array_equal(dSS, activation_counts(X, W0 + moves) - activation_counts(X, W0))


def test_attack_passes_sharing_one_sign_pass_equal_fresh_passes():
    """Within an attack the sign pass of the neurons is done once and shared by every pass
    (when they fit in one chunk): each pass must equal a pass computed from scratch, whatever
    passes came before (nothing of one pass may leak into the next)."""
    from ntkcheck.kernels.attack import AttackPasses, attack_pass

    rng = np.random.default_rng(13)
    n, d, R = 80, 6, 0.05
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    W0 = rng.standard_normal((2000, d))
    G = X @ X.T
    push = AttackPasses(X, G, W0, R, 64.0)
    assert push.cached is not None  # the shared sign passes are in use
    assert AttackPasses(X, G, W0, R, 0.2).cached is None  # the budget too small: each pass its own
    vs = [rng.standard_normal(n) for _ in range(3)]
    for v, sign in [(vs[0], 1.0), (vs[1], -1.0), (vs[0], 1.0), (vs[2], -1.0), (vs[1], -1.0)]:
        m1, m2 = np.zeros_like(W0), np.zeros_like(W0)
        np.testing.assert_array_equal(push(v, sign, m1), attack_pass(X, G, W0, R, v, sign, 0.2, m2))
        np.testing.assert_array_equal(m1, m2)


def test_attack_pass_with_a_zero_input():
    """An input x = 0 has w·x = 0 for every neuron and no push changes it: the pass must not
    divide by its norm (no warning, finite moves) and still return the exact count change."""
    import warnings

    from ntkcheck.kernels.attack import attack_pass
    from ntkcheck.kernels import activation_counts

    rng = np.random.default_rng(14)
    X = rng.standard_normal((30, 5))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    X[3] = 0.0
    W0 = rng.standard_normal((500, 5))
    v = rng.standard_normal(30)
    for R in (0.1, 3.0):
        moves = np.zeros_like(W0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            dSS = attack_pass(X, X @ X.T, W0, R, v, 1.0, 64, moves=moves)
        assert np.all(np.isfinite(moves)) and np.any(moves != 0)
        np.testing.assert_array_equal(dSS, activation_counts(X, W0 + moves) - activation_counts(X, W0))


@pytest.mark.parametrize("longest", [1, 9, 64, 65, 400])  # rows of one entry, short rows, the sparse-product fallback
def test_pair_counts_equal_the_dense_product(longest):
    """AᵀA counted by offsets in the sorted entry list (or by the sparse product for long rows)
    against the dense product, including rows of exactly _PAIR_OFFSETS entries and empty rows."""
    rng = np.random.default_rng(longest)
    rows, n = 300, 500
    A = np.zeros((rows, n), dtype=np.int64)
    for r, size in enumerate(rng.integers(0, longest + 1, rows)):
        A[r, rng.choice(n, size, replace=False)] = 1
    A[:2] = 0
    A[1, rng.choice(n, longest, replace=False)] = 1  # the longest row is there
    k, i = np.nonzero(A)
    np.testing.assert_array_equal(pair_counts(k, i, rows, n), A.T @ A)
    np.testing.assert_array_equal(pair_counts(k[:0], i[:0], rows, n), np.zeros((n, n)))


def test_extreme_eigenpairs_match_the_full_decomposition():
    """The attack and the certificate take only the extreme eigenpairs (LAPACK's syevr on one
    index); they must be the full decomposition's, the vector up to sign."""
    rng = np.random.default_rng(9)
    M = rng.standard_normal((60, 60))
    M += M.T
    w, V = np.linalg.eigh(M)
    for top in (True, False):
        lo, hi, v = extreme_eigenvalues(M, vector_at_top=top)
        assert lo == pytest.approx(w[0], rel=1e-12) and hi == pytest.approx(w[-1], rel=1e-12)
        ref = V[:, -1] if top else V[:, 0]
        assert abs(v @ ref) == pytest.approx(1.0, abs=1e-10)
    assert extreme_eigenvalues(M)[:2] == pytest.approx((w[0], w[-1]), rel=1e-12)
    assert eigenvalue_at(M, 3) == pytest.approx(w[3], rel=1e-12)


@settings(max_examples=80)
@given(n=st.integers(2, 40), frac=st.floats(0.0, 1.0),
       shape=st.sampled_from(["bordered", "block+", "block-", "one outside"]),
       seed=st.integers(0, 2**31))
def test_bordered_extremes_are_the_full_decompositions(n, frac, shape, seed):
    """A symmetric M with rows and columns only at T (ΔH of a pass, T its changed inputs):
    the extremes by Rayleigh–Ritz on span{e_T} ⊕ range(M[N, T]) against numpy's full
    eigvalsh, and the vector an eigenvector of the extreme asked for. A definite block M_TT
    alone (no border: R = 0) puts one extreme at 0, in M's null space, which K then shares.
    With one entry pair outside the rows and columns T, M is not of that shape: the full
    eigensolver must be taken, and gives the same extremes."""
    rng = np.random.default_rng(seed)
    T = np.sort(rng.choice(n, int(frac * n), replace=False))
    M = np.zeros((n, n))
    if shape == "bordered":
        A = rng.standard_normal((n, n))
        M[T] = (A + A.T)[T]
        M[:, T] = (A + A.T)[:, T]
    else:
        A = rng.standard_normal((T.size, T.size))
        M[np.ix_(T, T)] = (1.0 if shape == "block+" else -1.0) * (A @ A.T + np.eye(T.size))
    N = np.setdiff1d(np.arange(n), T)
    if shape == "one outside" and N.size:
        i, j = rng.choice(N, 2)
        M[i, j] = M[j, i] = 5.0
    w = np.linalg.eigvalsh(M)
    scale = max(1.0, float(np.abs(w).max()))
    for top in (None, True, False):
        lo, hi, v = bordered_extremes(M, T, vector_at_top=top)
        assert abs(lo - w[0]) <= 1e-11 * scale and abs(hi - w[-1]) <= 1e-11 * scale
        if top is not None:
            lam = hi if top else lo
            assert abs(np.linalg.norm(v) - 1.0) <= 1e-12
            assert np.linalg.norm(M @ v - lam * v) <= 1e-9 * scale


def test_a_runs_shared_input_grams_change_no_number():
    """The band guess, the critical radii and the attack given a run's InputGrams return the
    same numbers, bit for bit, as when each forms X's Gram matrices itself; grams for another
    m or n are refused, and the shared arrays cannot be written to."""
    from ntkcheck.kernels import InputGrams, band_guess
    _, X, W0 = setup(seed=5, n=20, m=2000)
    R = 0.05
    grams = InputGrams.of(X, W0.shape[0])
    cert = certify(X, W0, R, 64)
    thrs = [0.02, 0.2]
    assert band_guess(X, W0, thrs, grams) == band_guess(X, W0, thrs)
    assert critical_radii(X, W0, thrs, 1e-12, 64, grams=grams) == critical_radii(X, W0, thrs, 1e-12, 64)
    a, b = attack(X, W0, R, cert, 2, 64, grams=grams), attack(X, W0, R, cert, 2, 64)
    assert (a.norm_dH, a.lam_min) == (b.norm_dH, b.lam_min)
    with pytest.raises(ValueError, match="m = 1000"):
        attack(X, W0, R, cert, 2, 64, grams=InputGrams.of(X, 1000))
    with pytest.raises(ValueError, match="n = 19"):
        band_guess(X, W0, thrs, InputGrams.of(X[:19], W0.shape[0]))
    with pytest.raises(ValueError):
        grams.Gs[0, 0] = 1.0
