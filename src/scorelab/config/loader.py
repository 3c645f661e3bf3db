"""Reading scenario and policy files, with errors a user can act on.

Every failure becomes a `ConfigError` naming the file, the field and what is allowed; the command line
turns it into one line on stderr and exit status 2.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .models import Policy, Scenario


class ConfigError(Exception):
    """A user's input is wrong. `str()` is the whole message: file, field, what is allowed."""

    def __init__(self, source: str, field: str | None, message: str):
        self.source, self.field, self.message = source, field, message
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    path: Path


def _presets_dir() -> Path:
    return Path(str(resources.files("scorelab.config") / "presets"))


def list_presets() -> list[Preset]:
    out = []
    for path in sorted(_presets_dir().glob("*.toml")):
        try:
            meta = tomllib.loads(path.read_text())["scenario"]
            out.append(Preset(path.stem, meta.get("description", "").strip().split("\n")[0], path))
        except (tomllib.TOMLDecodeError, KeyError):  # a broken shipped preset is a bug: tests catch it
            out.append(Preset(path.stem, "(unreadable preset)", path))
    return out


def resolve_source(name_or_path: str) -> Path:
    """A preset name (``rr1``) or a path to a scenario file."""
    path = Path(name_or_path)
    if path.is_symlink() and not path.exists():
        raise ConfigError(name_or_path, None, "a broken symbolic link or a link loop; point it at a scenario file")
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(name_or_path, None, "no such scenario file")
        return path
    preset = _presets_dir() / f"{name_or_path}.toml"
    if preset.is_file():
        return preset
    names = ", ".join(p.name for p in list_presets())
    raise ConfigError(name_or_path, None, f"neither a preset nor a file; presets are: {names}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(path), None, f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), None, "not UTF-8 text") from None
    return parse_toml(text, str(path))


MAX_DEPTH = 32  # tables and lists inside each other: no scenario needs more than 6


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """TOML text as a dict; ConfigError (never a traceback) for malformed or absurdly nested input."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, None, f"malformed TOML: {e}") from None
    except RecursionError:
        data = None
    if data is None or _depth(data) > MAX_DEPTH:
        raise ConfigError(source, None, f"tables or lists are nested more than {MAX_DEPTH} deep; "
                                        "a scenario nests at most a few levels")
    return data


def _depth(value: Any, limit: int = MAX_DEPTH + 1) -> int:
    """Nesting depth of ``value``, counted iteratively (stops at ``limit``)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if d >= limit:
            return d
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after[_check(), Scenario]",):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


ECHO_LIMIT = 80  # characters of a wrong value quoted back in a message


def short(value: Any, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)``, cut to ``limit`` characters (an error never echoes a 34 KB value)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text):,} characters)"


def join_field(field: str, head: str) -> str:
    """``field`` + ``head`` naming each part once: a model's own message may repeat the path to it
    (``policy.composite`` + ``policy.composite.subscores`` is ``policy.composite.subscores``)."""
    if not field:
        return head
    for k in range(len(field)):
        tail = field[k:]
        if (k == 0 or field[k - 1] == ".") and (head == tail or head.startswith(tail + ".")
                                                 or head.startswith(tail + "[")):
            return field[:k] + head
    return f"{field}.{head}"


def allowed_keys(model: Any, loc: tuple[Any, ...]) -> list[str] | None:
    """The keys allowed in the table at ``loc`` (the path of an unknown key, without the key itself)."""
    import typing

    from pydantic import BaseModel

    def models_in(annotation: Any) -> list[type]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        out: list[type] = []
        for arg in typing.get_args(annotation):
            out += models_in(arg)
        return out

    current = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        nxt: list[type] = []
        for m in current:
            f = m.model_fields.get(part)
            if f is not None:
                nxt += models_in(f.annotation)
        if not nxt:
            return None
        current = nxt
    keys: list[str] = []
    for m in current:
        keys += [k for k in m.model_fields if k not in keys]
    return keys


def explain(source: str, err: ValidationError, model: Any = None, prefix: str = "") -> ConfigError:
    """The first problem of a pydantic error as a `ConfigError`: the field's path once, what was wrong,
    the value (shortened), and for an unknown key the keys allowed there."""
    errors = err.errors(include_url=False)
    stripped = [_strip(e["loc"]) for e in errors]
    # a value of a union (a number or a {group: number} table) fails once per member: report the member
    # that went deepest into the value, which is the one the user meant
    same = [i for i, loc in enumerate(stripped) if loc[: len(stripped[0])] == stripped[0]]
    pick = max(same, key=lambda i: len(stripped[i]))
    first, loc = errors[pick], stripped[pick]
    if model is not None and len(loc) >= 2 and first["type"] != "extra_forbidden":
        loc = _drop_tags(model, loc)
    elif model is not None and first["type"] == "extra_forbidden":
        loc = (*_drop_tags(model, loc[:-1]), loc[-1])
    field = prefix + _loc(loc)
    msg = first["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if first["type"] == "extra_forbidden":
        keys = allowed_keys(model, loc[:-1]) if model is not None else None
        msg = f"unknown key; allowed: {', '.join(keys)}" if keys else "unknown key; see the scenario format in docs/format.md"
    elif "input" in first and first["type"] not in ("missing",) and not isinstance(first["input"], dict):
        msg = f"{msg} (got {short(first['input'])})"
    # a model-level error names its field at the start of the message ("grades: bands ... overlap")
    head, _, rest = msg.partition(": ")
    if rest and re.fullmatch(r"[A-Za-z_][\w.\[\]]*", head):
        field = join_field(field, head)
        msg = rest
    return ConfigError(source, field or None, msg)


def _strip(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """A pydantic error location without validator names and union members ("float", "dict[str,float]")."""
    loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
    return tuple(p for p in loc if not (isinstance(p, str) and (p in ("float", "dict[str,float]", "Policy", "str", "int",
                                                                      "bool", "list[str]", "none", "constrained-int",
                                                                      "constrained-float")
                                                                 or p.startswith(("tuple[", "list[", "dict[")))))


def _drop_tags(model: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the tag pydantic adds inside a discriminated union (``groups[0].start.normal.sd``)."""
    out: list[Any] = []
    for part in loc:
        keys = allowed_keys(model, tuple(out)) if isinstance(part, str) and out else None
        if keys is not None and part not in keys:
            continue
        out.append(part)
    return tuple(out)


_explain = explain


def _explain_value(source: str, e: ValueError) -> ConfigError:
    head, _, rest = str(e).partition(": ")
    return ConfigError(source, head if rest else None, rest or str(e))


def load_policy(path: Path) -> Policy:
    data = _read_toml(path)
    data = data.get("policy", data)
    if isinstance(data, dict):
        data = _embed_lender_csvs(data, path)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as e:
        raise _explain(str(path), e, Policy) from None
    try:
        policy.check_governance()
    except ValueError as e:
        raise _explain_value(str(path), e) from None
    return policy


def load_scenario(name_or_path: str | Path, **overrides: Any) -> Scenario:
    """Load and validate a scenario (a preset name or a file). ``overrides`` set scenario.population etc."""
    path = resolve_source(str(name_or_path))
    data = _read_toml(path)
    policy = data.get("policy")
    if isinstance(policy, str):  # the policy lives in its own file, relative to the scenario
        ppath = (path.parent / policy).resolve()
        if not ppath.is_file():
            raise ConfigError(str(path), "policy", f"policy file {policy!r} not found (looked in {ppath})")
        data = dict(data)
        data["policy"] = load_policy(ppath).model_dump()
    data = _embed_start_csvs(data, path)
    if isinstance(data.get("policy"), dict) and not isinstance(policy, str):
        data = {**data, "policy": _embed_lender_csvs(data["policy"], path, "policy.")}
    meta = dict(data.get("scenario", {})) if isinstance(data.get("scenario"), dict) else data.get("scenario")
    if isinstance(meta, dict):
        for key, value in overrides.items():
            if value is not None:
                meta[key] = value
        data = dict(data)
        data["scenario"] = meta
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        loc = e.errors(include_url=False)[0]["loc"]
        given = {k for k, v in overrides.items() if v is not None}
        if len(loc) == 2 and loc[0] == "scenario" and loc[1] in given:  # blame the option, not the preset file
            option = {"population": "--population", "days": "--days", "seed": "--seed"}.get(str(loc[1]), str(loc[1]))
            raise ConfigError(option, None, _explain(option, e, Scenario).message) from None
        raise _explain(str(path), e, Scenario) from None


def _embed_start_csvs(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Groups' start distributions given as CSV files (next to the scenario) are read into the data."""
    from .start import embed_csv

    groups = data.get("groups")
    if not isinstance(groups, list) or not any(isinstance(g, dict) and isinstance(g.get("start"), dict)
                                               and "csv" in g["start"] for g in groups):
        return data
    out = []
    for i, g in enumerate(groups):
        if isinstance(g, dict) and isinstance(g.get("start"), dict) and "csv" in g["start"]:
            try:
                g = {**g, "start": embed_csv(g["start"], path.parent)}
            except ValueError as e:
                raise ConfigError(str(path), f"groups[{i}].start.csv", str(e)) from None
        out.append(g)
    return {**data, "groups": out}


def _embed_lender_csvs(policy: dict[str, Any], path: Path, where: str = "") -> dict[str, Any]:
    """The lender's repayment curves given as CSV files (columns score,p_repay, next to the file) are read in."""
    from .start import _read_csv

    lender = policy.get("lender")
    if not isinstance(lender, dict) or not isinstance(lender.get("repay"), list):
        return policy
    curves = []
    for i, c in enumerate(lender["repay"]):
        if isinstance(c, dict) and isinstance(c.get("csv"), str):
            try:
                scores, p = _read_csv((path.parent / c["csv"]).resolve(), ("score", "p_repay"))
            except ValueError as e:
                raise ConfigError(str(path), f"{where}lender.repay[{i}].csv", str(e)) from None
            c = {**{k: v for k, v in c.items() if k != "csv"}, "scores": scores, "p": p}  # embedded: stands alone
        curves.append(c)
    return {**policy, "lender": {**lender, "repay": curves}}


def scenario_from_dict(data: dict[str, Any], source: str = "<dict>") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        raise _explain(source, e, Scenario) from None
