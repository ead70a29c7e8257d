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
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .errors import UserError


_EXP_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

#: limits on a scenario document, checked on YAML's node graph before anything is built or walked
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 100_000  # nodes as a walk sees them, aliases expanded
MAX_YAML_DEPTH = 64
MAX_SCALAR_CHARS = 1000


def short(value: Any, limit: int = 60) -> str:
    """repr(value), cut to ``limit`` characters: messages never echo a large input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_yaml(text: str, what: str) -> Any:
    """``yaml.safe_load`` with bounds: the node graph is composed first (PyYAML shares the node of
    an anchor among its aliases, so composing costs the text's size) and walked with aliases
    expanded, refusing on the way a recursive alias, nesting deeper than MAX_YAML_DEPTH, more
    than MAX_YAML_NODES nodes (alias bombs), scalars longer than MAX_SCALAR_CHARS (4000-digit
    integers) and duplicate keys; only then is the document constructed."""
    if len(text) > MAX_YAML_BYTES:
        raise UserError(f"{what} is {len(text)} characters long; scenarios are limited to {MAX_YAML_BYTES}.")
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except RecursionError:
        raise UserError(f"{what} is nested too deeply (more than {MAX_YAML_DEPTH} levels).") from None
    except yaml.YAMLError as e:
        raise UserError(_yaml_problem(e, what)) from None
    if len(nodes) > 1:
        raise UserError(f"{what} holds {len(nodes)} YAML documents; give one.")
    if not nodes:
        return None
    count = 0
    stack: list[tuple[yaml.Node, int, tuple[int, ...]]] = [(nodes[0], 0, ())]
    while stack:
        node, depth, path = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise UserError(f"{what} expands to more than {MAX_YAML_NODES} values (aliases included).")
        if depth > MAX_YAML_DEPTH:
            raise UserError(f"{what} is nested too deeply (more than {MAX_YAML_DEPTH} levels).")
        if id(node) in path:
            raise UserError(f"{what} has a recursive alias at line {node.start_mark.line + 1}.")
        if isinstance(node, yaml.ScalarNode):
            if len(node.value) > MAX_SCALAR_CHARS:
                raise UserError(f"{what} has a value of {len(node.value)} characters at line "
                                f"{node.start_mark.line + 1} (starting {short(node.value[:20])}).")
            continue
        inner = path + (id(node),)
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        raise UserError(f"{what} gives key {short(k.value)} twice (lines {seen[k.value]} "
                                        f"and {k.start_mark.line + 1}).")
                    seen[k.value] = k.start_mark.line + 1
                stack += [(k, depth + 1, inner), (v, depth + 1, inner)]
        else:
            stack += [(v, depth + 1, inner) for v in node.value]
    try:
        return yaml.SafeLoader(text).get_single_data()
    except yaml.YAMLError as e:  # (a tag that does not construct, say)
        raise UserError(_yaml_problem(e, what)) from None


def _yaml_problem(e: yaml.YAMLError, what: str) -> str:
    where = ""
    mark = getattr(e, "problem_mark", None)
    if mark is not None:
        where = f" at line {mark.line + 1}, column {mark.column + 1}"
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"{what} is not valid YAML{where}: {str(problem)[:100]}."


#: the most trials a run may ask for (nothing proportional to the count is built before a trial)
MAX_TRIALS = 100_000

#: the smallest failure probability δ a claim "holds with probability ≥ 1 − δ" takes: below
#: ~1.1e-16, 1 − δ rounds to 1 in float64 and the claim's target is no longer a probability < 1
MIN_FAILURE_PROBABILITY = 1e-15

#: the type of a failure probability δ (or ε) of a claim that holds with probability ≥ 1 − δ
FailureProbability = Annotated[float, Field(ge=MIN_FAILURE_PROBABILITY, lt=1.0)]


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
    backend: Literal["auto", "numpy", "torch"] = Field(
        "auto", description="where count products run: numpy (float32 BLAS), torch (exact int8 product; "
                            "pip install 'ntkcheck[fast]'), or auto: torch where it pays (the same counts)")


class BaseScenario(Strict):
    check: str
    seed: int = Field(0, ge=0, lt=2**63, description="root seed of all randomness")
    trials: Union[Annotated[int, Field(ge=1, le=MAX_TRIALS)], Literal["auto", "sequential"]] = Field(
        "auto", description=f"number of trials (1 to {MAX_TRIALS}); auto: the fewest that could PASS; "
                            "sequential: batches of 8 until every primary row is decided (anytime-valid)")
    max_trials: int = Field(2000, ge=1, le=MAX_TRIALS, description="trials=sequential: the budget of trials")
    max_seconds: Union[Annotated[float, Field(gt=0)], None] = Field(
        None, description="trials=sequential: the budget of wall time in seconds (none: no limit)")
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
    if not p.is_file():  # a FIFO or a device would block or never end
        raise UserError(f"scenario file '{p}' is not a regular file.")
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
        text = raw.decode("utf-8")
    except PermissionError:
        raise UserError(f"scenario file '{p}' cannot be read (permission denied).") from None
    except UnicodeDecodeError:
        raise UserError(f"scenario file '{p}' is not UTF-8 text.") from None
    doc = safe_yaml(text, f"scenario file '{p}'")
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
        raise UserError(f"--set needs KEY=VALUE, got {short(item)}.")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"--set has an empty key in '{item}'.")
    value = safe_yaml(raw, f"--set value for '{key}'") if raw.strip() else None
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


def get_path(doc: dict[str, Any], key: str) -> Any:
    """The value at dotted ``key`` of a nested dict (None when absent): set_path's reverse."""
    for part in key.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


#: what a branch of a union accepts, by the type of the error it reported
_BRANCH_WANTS = {"float_type": "a number", "float_parsing": "a number", "int_type": "an integer",
                 "int_parsing": "an integer", "int_from_float": "an integer", "list_type": "a list",
                 "string_type": "a string", "bool_type": "true or false", "bool_parsing": "true or false"}


#: pydantic's bound errors, as a relation (the bound itself is printed with :g)
_BOUNDS = {"greater_than": ">", "greater_than_equal": "≥", "less_than": "<", "less_than_equal": "≤"}


def _key(loc: tuple) -> str:
    """A pydantic location as a scenario key, without the union-branch tags ('int', 'float',
    "literal['auto']", …) that pydantic adds to it."""
    parts = [x for x in loc if str(x) not in ("int", "float", "str", "bool")
             and not str(x).startswith(("literal[", "list[", "constrained-", "function-"))]
    key = ""
    for x in parts:
        key += f"[{x}]" if isinstance(x, int) else (f".{x}" if key else str(x))
    return key


def _sentence(e: ValidationError, model: type[BaseModel]) -> str:
    errors = e.errors()
    err = errors[0]
    loc = _key(err["loc"])
    typ = err["type"]
    # a value that no branch of a union accepts (e.g. T: 'auto' or a number): say what each takes
    branches = [x for x in errors if _key(x["loc"]) == loc]
    wants = [x["ctx"]["expected"] if x["type"] == "literal_error" else _BRANCH_WANTS.get(x["type"])
             for x in branches]
    got = short(err.get("input"))
    if len(branches) > 1 and all(wants) and loc != "trials":
        return f"scenario key '{loc}' must be {' or '.join(dict.fromkeys(wants))} (got {got})."
    if typ == "extra_forbidden":
        parent = loc.rsplit(".", 1)[0] if "." in loc else ""
        allowed = _allowed_keys(model, parent)
        hint = f" (known keys{' in ' + parent if parent else ''}: {', '.join(allowed)})" if allowed else ""
        return f"unknown scenario key '{loc}'{hint}."
    msg = err["msg"]
    if typ in ("dict_type", "model_type"):
        return f"scenario key '{loc}' must be a mapping of keys to values (got {got})."
    if typ == "missing":
        return f"scenario key '{loc}' is required."
    if loc == "trials":
        return (f"scenario key 'trials' must be an integer from 1 to {MAX_TRIALS}, 'auto' or 'sequential' "
                f"(got {got}).")
    if typ in _BOUNDS and isinstance(limit := next(iter(err.get("ctx", {}).values()), None), (int, float)):
        return f"scenario key '{loc}' must be {_BOUNDS[typ]} {limit:g} (got {got})."  # (1e-15, not 0.000000000000001)
    return f"scenario key '{loc}': {msg[0].lower() + msg[1:]} (got {got})."


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


#: a scenario names where its trials run only through the command line or the environment:
#: Dask's protocol carries pickles, so a file that could choose the scheduler could send the
#: trials (and receive code) anywhere
SCHEDULER_REFUSED = ("{where} sets compute.scheduler, which only the command line (--scheduler ADDRESS) or the "
                     "environment (NTKCHECK_SCHEDULER) may choose: a scenario could otherwise send trials anywhere.")


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
            raise UserError(f"scenario file '{path}' is for check {short(filed['check'])}, not '{check}'.")
        if "compute.scheduler" in leaf_keys(filed):
            raise UserError(SCHEDULER_REFUSED.format(where=f"scenario file '{path}'"))
        explicit |= leaf_keys(filed)
        doc = deep_merge(doc, filed)
    for key, value in (options or {}).items():
        if value is None:
            continue
        set_path(doc, key, value)
        explicit.add(key)
    for item in sets:
        key, value = parse_set(item)
        if key == "compute.scheduler" or key == "compute" and isinstance(value, dict) and "scheduler" in value:
            raise UserError(SCHEDULER_REFUSED.format(where="--set"))
        if key == "check" and value != check:
            raise UserError(f"--set check={short(value)} cannot change the check; run that check instead.")
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


def leaf_keys(doc: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for k, v in doc.items():
        if isinstance(v, dict):
            out |= leaf_keys(v, f"{prefix}{k}.")
        else:
            out.add(f"{prefix}{k}")
    return out


#: [tool.ntkcheck] in pyproject.toml: run defaults of a project (below any scenario file or option)
PROJECT_KEYS = {"confidence": "confidence", "trials": "trials", "seed": "seed", "violation_bound": "violation_bound",
                "workers": "compute.workers", "working_memory_mb": "compute.working_memory_mb"}


def project_defaults(start: Path | None = None) -> dict[str, Any]:
    """The [tool.ntkcheck] table of the nearest pyproject.toml at or above ``start`` (the current
    folder), as nested scenario keys; {} when there is none (or Python < 3.11, without tomllib)."""
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        return {}
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        f = folder / "pyproject.toml"
        if f.is_file():
            try:
                tool = tomllib.loads(f.read_text(encoding="utf-8")).get("tool", {})
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
                raise UserError(f"'{f}' could not be read as TOML ({e}).") from None
            table = tool.get("ntkcheck", {}) if isinstance(tool, dict) else {}
            if not isinstance(table, dict):
                raise UserError(f"'{f}': [tool.ntkcheck] must be a table.")
            unknown = sorted(set(table) - set(PROJECT_KEYS))
            if unknown:
                raise UserError(f"'{f}' [tool.ntkcheck]: unknown key '{unknown[0]}'; the keys are "
                                f"{', '.join(PROJECT_KEYS)}.")
            out: dict[str, Any] = {}
            for k, v in table.items():
                set_path(out, PROJECT_KEYS[k], v)
            return out
    return {}
