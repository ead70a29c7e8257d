"""Scenarios: YAML → validated, fully resolved, typed scenario.

Resolution order (later wins): the check's built-in default, the scenario file,
the named options (``--m --n --d --trials --seed --confidence --data``), then
``--set KEY=VALUE`` in the order given. YAML is read with ``yaml.safe_load``
only. Validation is done by pydantic models with ``extra="forbid"`` and strict
types; the first problem becomes one sentence naming the key.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .errors import UserError


_EXP_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class LabelSpec(Strict):
    source: Literal["sign", "gaussian", "teacher", "file"] = Field(
        "sign", description="labels: sign (±1 at random), gaussian, teacher (a random ReLU network), file")
    teacher_width: int = Field(8, gt=0, le=1_000_000, description="width of the teacher network")
    path: str | None = Field(None, description="labels file (.npy, .npz, .csv; one value per row)")


class DataSpec(Strict):
    source: Literal["sphere", "gaussian", "file"] = Field(
        "sphere", description="where inputs come from: sphere (uniform on S^{d-1}), gaussian, or file")
    n: int = Field(20, gt=1, le=100_000, description="number of data points")
    d: int = Field(10, gt=0, le=100_000, description="input dimension")
    path: str | None = Field(None, description="data file (.npy, .npz, .csv) when source is file")
    labels: LabelSpec = LabelSpec()


class NetworkSpec(Strict):
    m: int = Field(4096, gt=0, le=1 << 40, description="width (number of neurons)")


class ComputeSpec(Strict):
    working_memory_mb: float = Field(256.0, gt=0, le=1 << 20,
                                     description="working-memory budget for neuron chunks, in MiB")
    workers: Union[int, Literal["auto"]] = Field(
        "auto", description="worker processes for trials; auto = the available cores")
    scheduler: str | None = Field(None, description="address of a Dask distributed scheduler to run trials on")


class BaseScenario(Strict):
    check: str
    seed: int = Field(0, ge=0, lt=2**63, description="root seed of all randomness")
    trials: Union[int, Literal["auto"]] = Field(
        "auto", description="number of trials, or auto: the fewest that could PASS")
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="family-wise confidence of the table")
    violation_bound: float = Field(
        0.05, gt=0.0, lt=1.0,
        description="trials=auto for universal claims: enough trials to bound P(violation) by this")
    data: DataSpec = DataSpec()
    network: NetworkSpec = NetworkSpec()
    compute: ComputeSpec = ComputeSpec()


def scenario_model(check: str, claim_model: type[Strict],
                   sections: dict[str, type[Strict]] | None = None) -> type[BaseScenario]:
    """The typed scenario of one check: the common keys, its ``claim`` section, and any
    further sections it declares (e.g. ``dynamics``)."""
    extra = {name: (model, model()) for name, model in (sections or {}).items()}
    return create_model(f"{check.capitalize()}Scenario", __base__=BaseScenario,
                        claim=(claim_model, claim_model()), **extra)


# ---------------------------------------------------------------------------------
def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise UserError(f"scenario file '{p}' does not exist.")
    if p.is_dir():
        raise UserError(f"scenario file '{p}' is a directory.")
    try:
        text = p.read_text(encoding="utf-8")
    except PermissionError:
        raise UserError(f"scenario file '{p}' cannot be read (permission denied).") from None
    except UnicodeDecodeError:
        raise UserError(f"scenario file '{p}' is not UTF-8 text.") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"scenario file '{p}' is not valid YAML{where}: {problem}.") from None
    if doc is None:
        raise UserError(f"scenario file '{p}' is empty.")
    if not isinstance(doc, dict):
        raise UserError(f"scenario file '{p}' must be a mapping of keys to values, "
                        f"not a {type(doc).__name__}.")
    data = doc.get("data")
    for holder in (data, data.get("labels") if isinstance(data, dict) else None):
        if isinstance(holder, dict) and isinstance(holder.get("path"), str):
            dp = Path(holder["path"]).expanduser()
            if not dp.is_absolute():  # relative to the scenario file
                holder["path"] = str(p.parent / dp)
    return doc


def parse_set(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE parsed as a YAML scalar or flow list."""
    if "=" not in item:
        raise UserError(f"--set needs KEY=VALUE, got '{item}'.")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"--set has an empty key in '{item}'.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise UserError(f"--set value for '{key}' is not a valid value: '{raw}'.") from None
    if isinstance(value, str) and _EXP_NUMBER.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 1e3 as a string; a user means the number
    return key, value


def set_path(doc: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    cur = doc
    for i, part in enumerate(parts[:-1]):
        nxt = cur.get(part)
        if nxt is None:
            nxt = cur[part] = {}
        if not isinstance(nxt, dict):
            raise UserError(f"scenario key '{'.'.join(parts[:i + 1])}' is a value, "
                            f"so '{key}' does not exist.")
        cur = nxt
    cur[parts[-1]] = value


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _sentence(e: ValidationError, model: type[BaseModel]) -> str:
    err = e.errors()[0]
    # drop the union-branch tags ('int', "literal['auto']") that pydantic adds to a location
    parts = [x for x in err["loc"] if str(x) != "int" and not str(x).startswith(("literal[", "list["))]
    loc = ""
    for x in parts:
        loc += f"[{x}]" if isinstance(x, int) else (f".{x}" if loc else str(x))
    typ = err["type"]
    if typ == "extra_forbidden":
        parent = loc.rsplit(".", 1)[0] if "." in loc else ""
        allowed = _allowed_keys(model, parent)
        hint = f" (known keys{' in ' + parent if parent else ''}: {', '.join(allowed)})" if allowed else ""
        return f"unknown scenario key '{loc}'{hint}."
    got = err.get("input")
    msg = err["msg"]
    if typ in ("dict_type", "model_type"):
        return f"scenario key '{loc}' must be a mapping of keys to values (got {got!r})."
    if typ == "missing":
        return f"scenario key '{loc}' is required."
    if loc == "trials":
        return f"scenario key 'trials' must be a positive integer or 'auto' (got {got!r})."
    return f"scenario key '{loc}': {msg[0].lower() + msg[1:]} (got {got!r})."


def _allowed_keys(model: type[BaseModel], dotted: str) -> list[str]:
    cur: Any = model
    for part in [p for p in dotted.split(".") if p]:
        f = getattr(cur, "model_fields", {}).get(part)
        if f is None:
            return []
        cur = f.annotation
    return list(getattr(cur, "model_fields", {}).keys())


def describe_keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, Any]]:
    """(dotted key, description, default) for every leaf key of a scenario model."""
    rows = []
    for name, f in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(describe_keys(ann, key + "."))
        else:
            rows.append((key, f.description or "", f.default))
    return rows


def resolve(model: type[BaseScenario], default: dict[str, Any], path: str | Path | None = None,
            options: dict[str, Any] | None = None, sets: list[str] | tuple[str, ...] = ()
            ) -> tuple[BaseScenario, set[str]]:
    """Build the validated scenario; also return the dotted keys the user gave explicitly."""
    doc = copy.deepcopy(default)
    explicit: set[str] = set()
    check = default["check"]
    if path is not None:
        filed = load_yaml(path)
        if "check" in filed and filed["check"] != check:
            raise UserError(f"scenario file '{path}' is for check '{filed['check']}', not '{check}'.")
        explicit |= _leaf_keys(filed)
        doc = deep_merge(doc, filed)
    for key, value in (options or {}).items():
        if value is None:
            continue
        set_path(doc, key, value)
        explicit.add(key)
    for item in sets:
        key, value = parse_set(item)
        if key == "check" and value != check:
            raise UserError(f"--set check={value} cannot change the check; run 'ntkcheck {value}'.")
        set_path(doc, key, value)
        explicit.add(key)
    try:
        sc = model.model_validate(doc)
    except ValidationError as e:
        raise UserError(_sentence(e, model)) from None
    if sc.data.source == "file" and not sc.data.path:
        raise UserError("scenario key 'data.path' is required when data.source is file.")
    if sc.data.source != "file" and sc.data.path:
        raise UserError("scenario key 'data.path' is set but data.source is not file; "
                        "set data.source=file or use --data.")
    if isinstance(sc.compute.workers, int) and not 1 <= sc.compute.workers <= 512:
        raise UserError(f"scenario key 'compute.workers' must be between 1 and 512 (got {sc.compute.workers}).")
    if sc.data.labels.source == "file" and not sc.data.labels.path:
        raise UserError("scenario key 'data.labels.path' is required when data.labels.source is file.")
    if sc.data.labels.source != "file" and sc.data.labels.path:
        raise UserError("scenario key 'data.labels.path' is set but data.labels.source is not file; "
                        "set data.labels.source=file or use --labels.")
    return sc, explicit


def _leaf_keys(doc: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for k, v in doc.items():
        if isinstance(v, dict):
            out |= _leaf_keys(v, f"{prefix}{k}.")
        else:
            out.add(f"{prefix}{k}")
    return out
