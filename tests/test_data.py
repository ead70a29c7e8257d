"""data.py: loading, normalising and describing inputs."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntkcheck import data
from ntkcheck.errors import UserError


def test_load_array_reads_npy_npz_and_csv_alike(tmp_path):
    X = np.arange(12.0).reshape(4, 3) + 1
    np.save(tmp_path / "x.npy", X)
    np.savez(tmp_path / "x.npz", X=X)
    (tmp_path / "x.csv").write_text("a,b,c\n" + "\n".join(",".join(map(str, r)) for r in X) + "\n")
    for name in ("x.npy", "x.npz", "x.csv"):
        assert np.array_equal(data.load_array(tmp_path / name), X), name


def test_load_array_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        data.load_array(tmp_path / "missing.npy")
    (tmp_path / "x.txt").write_text("1,2\n")
    with pytest.raises(UserError):
        data.load_array(tmp_path / "x.txt")


@settings(max_examples=50, deadline=None)
@given(rows=st.integers(2, 6), cols=st.integers(1, 5), exp=st.integers(-250, 250), seed=st.integers(0, 2**32 - 1))
def test_normalize_gives_unit_rows_at_any_scale(rows, cols, exp, seed):
    X = np.random.default_rng(seed).standard_normal((rows, cols)) * 10.0**exp
    X[np.all(X == 0, axis=1)] = 1.0
    out = data.normalize(X, "test")
    assert np.allclose(np.linalg.norm(out.X, axis=1), 1.0, rtol=1e-14, atol=0)
    assert np.allclose(out.X, X / np.linalg.norm(X / np.abs(X).max(axis=1, keepdims=True), axis=1, keepdims=True)
                       / np.abs(X).max(axis=1, keepdims=True), rtol=1e-12, atol=0)
    assert (out.notes == []) == (abs(exp) == 0 and np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-12))


def test_parallel_gap_has_digits_where_cos_has_none():
    a = np.array([1.0, 0.0])
    b = np.array([1.0, 1e-7])
    X = np.stack([a, b])
    assert data.parallel_gap(X, 0, 1) == pytest.approx(0.5e-14, rel=1e-6)  # 1 − cos θ ≈ θ²/2
    assert data.describe_cos(X, 0, 1) == "1 − |cos| = 5e-15"
    assert not data.exactly_parallel(X, 0, 1)
    assert data.exactly_parallel(np.stack([a, -2 * a]), 0, 1)


def test_most_parallel_pair_is_the_largest_abs_cosine():
    X = np.array([[1.0, 0, 0], [0, 1.0, 0], [-0.99, 0.1, 0], [0, 0, 1.0]])
    i, j, c = data.most_parallel_pair(X)
    assert (i, j) == (0, 2) and c == pytest.approx(0.99 / np.hypot(0.99, 0.1))
