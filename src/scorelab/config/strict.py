"""The one base of every model a user's file is read into (scenario, policy, sweep, red lists).

Strict types: a TOML integer may stand for a float, and nothing else is converted. ``points = true``,
``population = "10000"``, ``speech = "yes"`` are refused, not read as 1, 10000 and True. Every float is
finite (no NaN, no ±inf), unknown keys are refused, and a validated model is frozen.

Two kinds of value arrive as other Python types when a model is read back from JSON (run.json, a
checkpoint's plan): enums as their string and tuples as lists. Those fields use `Lax` so that only the
container is converted; the numbers inside stay strict.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Strict

CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False, defer_build=True)

Lax = Strict(False)  # Annotated[tuple[...], Lax]: accept a list (JSON) for a tuple, an enum's value for the enum


class StrictModel(BaseModel):
    model_config = CONFIG


def new_list() -> list:
    """An empty list: ``Field(default_factory=new_list)`` is ``default_factory=list`` made cheap to build.
    Building a validator, pydantic reads the signature of every default factory, and a builtin type's
    signature is parsed from its text each time (~0.27 ms; the scenario's 36 such fields were ~10 ms of
    every run's start, measured), where a Python function's is read at once."""
    return []


def new_dict() -> dict:
    """An empty dict (as `new_list`)."""
    return {}
