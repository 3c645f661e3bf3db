"""docs/format.md is the reference that error messages point to: its example must run, and every key of
the scenario format must be documented there."""

import re
import typing
from pathlib import Path

from pydantic import BaseModel

import scorelab
from scorelab.config.models import Scenario

DOC = Path(__file__).resolve().parents[2] / "docs" / "format.md"


def _models(model: type[BaseModel], seen: set) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                _models(t, seen)
            stack.extend(typing.get_args(t))


def test_the_example_loads_and_runs(tmp_path):
    text = DOC.read_text()
    example = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    path = tmp_path / "small-town.toml"
    path.write_text(example)
    sc = scorelab.load(str(path))
    assert sc.scenario.name == "small-town" and len(sc.policy.rules) == 4
    r = scorelab.simulate(sc, out=tmp_path / "run", workers=1, population=2000, days=20)
    a = r.metrics[r.metrics.group == "all"]
    assert a.false_jaywalking.sum() > 0 and a.penalties.sum() > 0


def test_every_key_of_the_format_is_documented():
    text = DOC.read_text()
    models: set = set()
    _models(Scenario, models)
    assert len(models) > 20
    def documented(name: str) -> bool:  # as a key (`rate`) or as a table header (`[[policy.rules]]`)
        return f"`{name}`" in text or re.search(r"`\[\[?([\w.]+\.)?" + name + r"\]\]?`", text) is not None

    missing = sorted({f"{m.__name__}.{name}" for m in models for name in m.model_fields if not documented(name)})
    assert not missing, f"keys not documented in docs/format.md: {missing}"
