"""Inputs: uniform on the unit sphere, Gaussian, or read from a file.

Files are ``.npy``, ``.npz`` (one array, or one named ``X``/``x``) or ``.csv``
(comma-separated, rows are samples, an optional header line). Rows are
normalised to unit length; a note says so when they were not unit already.
Every problem with a file is a :class:`~ntkcheck.errors.UserError` naming it.
"""
from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError

#: rows whose norms differ from 1 by less than this count as unit already
UNIT_TOL = 1e-9
#: |cos| above this counts as parallel (one rounding step of a normalised dot product)
PARALLEL_TOL = 1e-12
#: what a CSV cell may hold: a decimal number (no '_' separators, which float() would accept)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)


@dataclass
class Inputs:
    X: np.ndarray
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]


def sample(source: str, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Raw samples: ``sphere`` (uniform on S^{d−1}) or ``gaussian`` (N(0, I_d))."""
    G = rng.standard_normal((n, d))
    if source == "sphere":
        return G / np.linalg.norm(G, axis=1, keepdims=True)
    if source == "gaussian":
        return G
    raise UserError(f"unknown data source '{source}' (use sphere, gaussian or a file)")


def load_array(path: str | Path, what: str = "data") -> np.ndarray:
    """Read a 2-D float array from .npy, .npz or .csv, refusing anything else."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} file '{p}' does not exist.")
    if p.is_dir():
        raise UserError(f"{what} file '{p}' is a directory, not a file.")
    if not p.is_file():  # a FIFO or a device (/dev/zero) would block or never end
        raise UserError(f"{what} file '{p}' is not a regular file.")
    ext = p.suffix.lower()
    limit = _read_limit()
    try:
        if ext == ".npy":
            _refuse_large(_npy_bytes(p), limit, what, p)
            arr = np.load(p, allow_pickle=False)
        elif ext == ".npz":
            with np.load(p, allow_pickle=False) as z:
                keys = list(z.keys())
                key = keys[0] if len(keys) == 1 else next((k for k in ("X", "x") if k in keys), None)
                if key is None:
                    raise UserError(f"{what} file '{p}' holds arrays {keys[:5]}; "
                                    "keep one array or name it 'X'.")
                _refuse_large(z.zip.getinfo(f"{key}.npy").file_size, limit, what, p)
                arr = z[key]
        elif ext == ".csv":
            _refuse_large(8 * p.stat().st_size, limit, what, p)  # parsed floats: at most ~8× the text
            arr = _load_csv(p, what)
        else:
            raise UserError(f"{what} file '{p}' has extension '{ext or '(none)'}'; "
                            "use .npy, .npz or .csv.")
    except UserError:
        raise
    except PermissionError:
        raise UserError(f"{what} file '{p}' cannot be read (permission denied).") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise UserError(f"{what} file '{p}' could not be read as {ext[1:]}: {_first_line(e)[:100]}.") from None
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise UserError(f"{what} file '{p}' holds {arr.dtype} values, not numbers.")
    return arr.astype(np.float64)


def _read_limit() -> float:
    """Bytes a data file may need once read: half of this machine's memory."""
    from .memory import memory_limit_bytes

    return 0.5 * memory_limit_bytes()


def _npy_bytes(p: Path) -> int:
    """The size of an .npy file's array from its header alone (before any data is read)."""
    with open(p, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        shape, _, dtype = (np.lib.format.read_array_header_1_0(fh) if version == (1, 0)
                           else np.lib.format.read_array_header_2_0(fh))
    return int(np.prod(shape, dtype=object)) * dtype.itemsize


def _refuse_large(nbytes: int, limit: float, what: str, p: Path) -> None:
    if nbytes > limit:
        raise UserError(f"{what} file '{p}' holds {nbytes / 2**30:.3g} GiB of numbers, more than half of "
                        f"this machine's memory ({limit / 2**30:.3g} GiB).")


def _first_line(e: Exception) -> str:
    s = str(e).strip().splitlines()
    return s[0].rstrip(".") if s else type(e).__name__


def _load_csv(p: Path, what: str) -> np.ndarray:
    """Rows of numbers. The first line is a header only if none of its cells is a number; any
    other cell that is not a number is an error naming its row and column (a typo such as
    'x3', a NUL, or '1_0', which Python's float() would read as 10). A UTF-8 byte-order mark
    is allowed."""
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{what} file '{p}' is not a text CSV file.") from None
    lines = [(k + 1, ln) for k, ln in enumerate(text.splitlines()) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise UserError(f"{what} file '{p}' is empty.")
    first = [f.strip() for f in lines[0][1].split(",")]
    if not any(_NUMBER.fullmatch(f) for f in first):
        lines = lines[1:]  # a header: no cell of it is a number
    rows = []
    for lineno, ln in lines:
        fields = [f.strip() for f in ln.split(",")]
        for col, f in enumerate(fields, start=1):
            if not _NUMBER.fullmatch(f):
                raise UserError(f"{what} file '{p}' has a non-numeric entry {f[:20]!r} at line {lineno}, "
                                f"column {col}.")
        rows.append([float(f) for f in fields])
    if not rows:
        raise UserError(f"{what} file '{p}' has a header but no data rows.")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise UserError(f"{what} file '{p}' has rows of different lengths {sorted(widths)[:5]}.")
    return np.array(rows, dtype=np.float64)


def validate_inputs(X: np.ndarray, where: str) -> np.ndarray:
    """Refuse arrays that are not a finite (n ≥ 2) × (d ≥ 1) matrix with nonzero rows."""
    if X.ndim != 2:
        raise UserError(f"{where} must be a 2-D array (rows are samples); it has {X.ndim} dimension(s).")
    n, d = X.shape
    if n < 2:
        raise UserError(f"{where} has {n} row(s); at least 2 data points are needed.")
    if d < 1:
        raise UserError(f"{where} has no columns.")
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise UserError(f"{where} has a non-finite value ({X[i, j]}) in row {i}, column {j}.")
    zero = ~np.any(X != 0, axis=1)
    if zero.any():
        raise UserError(f"{where} row {int(np.argmax(zero))} is zero and cannot be normalised.")
    return X


def normalize(X: np.ndarray, source: str) -> Inputs:
    """Scale every row to unit length, with a note when that changed anything. Norms are taken
    of rows first scaled by their largest |entry| (so 1e200 does not overflow to inf, nor 1e-200
    underflow to 0)."""
    top = np.abs(X).max(axis=1)
    norms = top * np.linalg.norm(X / top[:, None], axis=1)
    notes = []
    if np.max(np.abs(norms - 1.0)) > UNIT_TOL:
        notes.append(f"inputs from {source} were normalised to unit length "
                     f"(row norms ranged from {norms.min():.4g} to {norms.max():.4g}).")
    return Inputs(X=(X / top[:, None]) / (norms / top)[:, None], source=source, notes=notes)


def most_parallel_pair(X: np.ndarray) -> tuple[int, int, float]:
    """Rows (i, j), i < j, with the largest |cos∠(x_i, x_j)|, and that |cos|."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    C = np.abs(Xn @ Xn.T)
    np.fill_diagonal(C, -np.inf)
    k = int(np.argmax(C))
    i, j = divmod(k, C.shape[0])
    i, j = min(i, j), max(i, j)
    return i, j, float(min(C[i, j], 1.0))


def parallel_gap(X: np.ndarray, i: int, j: int) -> float:
    """1 − |cos∠(x_i, x_j)|, computed as min(‖a − b‖², ‖a + b‖²)/2 for the normalised rows (no
    cancellation: 1 − |cos| itself loses every digit near parallel)."""
    a = X[i] / np.linalg.norm(X[i])
    b = X[j] / np.linalg.norm(X[j])
    return float(min(np.sum((a - b) ** 2), np.sum((a + b) ** 2)) / 2)


def describe_cos(X: np.ndarray, i: int, j: int) -> str:
    """|cos| of rows i and j with enough digits to tell it from 1."""
    gap = parallel_gap(X, i, j)
    return "|cos| = 1 (parallel)" if gap == 0 else f"1 − |cos| = {gap:.3g}"


def exactly_parallel(X: np.ndarray, i: int, j: int) -> bool:
    """Whether rows i and j are parallel beyond doubt: after normalisation they are equal or
    opposite entry for entry, or their computed |cos| is exactly 1. Pairs merely within a
    rounding tolerance of parallel are not: they may or may not meet Lemma 2.1's hypothesis."""
    a = X[i] / np.linalg.norm(X[i])
    b = X[j] / np.linalg.norm(X[j])
    return bool(np.array_equal(a, b) or np.array_equal(a, -b) or min(abs(float(a @ b)), 1.0) == 1.0)


def parallel_pairs(X: np.ndarray, limit: int = 5) -> list[tuple[int, int]]:
    """Up to ``limit`` pairs of parallel (or anti-parallel, or duplicate) rows."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    C = np.abs(Xn @ Xn.T)
    iu = np.argwhere(np.triu(C >= 1.0 - PARALLEL_TOL, k=1))
    return [(int(i), int(j)) for i, j in iu[:limit]]


def describe_pairs(pairs: list[tuple[int, int]]) -> str:
    return ", ".join(f"rows {i} and {j}" for i, j in pairs)


def make_labels(spec, X: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Labels y for inputs X (n × d) as the scenario's ``data.labels`` says."""
    n = X.shape[0]
    if spec.source == "sign":
        return rng.choice(np.array([-1.0, 1.0]), size=n), []
    if spec.source == "gaussian":
        return rng.standard_normal(n), []
    if spec.source == "teacher":
        k = spec.teacher_width
        V = rng.standard_normal((k, X.shape[1]))
        a = rng.choice(np.array([-1.0, 1.0]), size=k)
        y = np.maximum(X @ V.T, 0.0) @ a / np.sqrt(k)
        rms = float(np.sqrt(np.mean(y * y)))
        if rms == 0:
            raise UserError("the teacher network is zero on every input; change the seed or teacher_width.")
        return y / rms, [f"teacher labels (width {k}) scaled to unit root-mean-square."]
    if spec.source == "file":
        y = load_array(spec.path, "labels")
        where = f"labels file '{spec.path}'"
        if y.ndim == 2 and 1 in y.shape:
            y = y.reshape(-1)
        if y.ndim != 1:
            raise UserError(f"{where} must hold one value per data row; it has shape {y.shape}.")
        if y.size != n:
            raise UserError(f"{where} has {y.size} labels but the data have {n} rows.")
        bad = ~np.isfinite(y)
        if bad.any():
            raise UserError(f"{where} has a non-finite value ({y[bad][0]}) at row {int(np.argmax(bad))}.")
        return y, []
    raise UserError(f"unknown label source '{spec.source}'.")
