"""What building the config models costs a run's start: nothing at import (validators are built at first
use), and no field whose default factory is a builtin type (pydantic parses such a factory's signature from
its text every time it builds a validator; `strict.new_list` / `new_dict` are the cheap equivalents)."""

import subprocess
import sys

import scorelab.experiments.calibrate_spec  # noqa: F401  (every model a user's file is read into)
import scorelab.experiments.sweep  # noqa: F401
import scorelab.plugins  # noqa: F401
from scorelab.config import strict
from scorelab.config.loader import load_scenario


def _all_models():
    seen, todo = [], [strict.StrictModel]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return seen


def test_no_default_factory_is_a_builtin_type():
    found = [(cls.__qualname__, name) for cls in _all_models() for name, f in cls.model_fields.items()
             if f.default_factory in (list, dict, set, tuple, frozenset)]
    assert len(_all_models()) > 30 and found == []


def test_empty_defaults_are_fresh_for_each_model():
    a, b = load_scenario("rr1"), load_scenario("rr1")
    assert a.policy.red_lists == [] and a.policy.red_lists is not b.policy.red_lists
    assert strict.new_list() == [] and strict.new_list() is not strict.new_list() and strict.new_dict() == {}


def test_importing_the_models_builds_no_validator():
    # a fresh process: this one may have validated a scenario already
    code = ("from scorelab.config import models; from scorelab.config.loader import load_scenario; "
            "a = models.Scenario.__pydantic_complete__; load_scenario('rr1'); print(a, models.Scenario.__pydantic_complete__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
