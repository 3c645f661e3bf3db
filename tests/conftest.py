import copy

import pytest

import scorelab
from scorelab.config.loader import scenario_from_dict


@pytest.fixture(scope="session")
def rr1_dict():
    return scorelab.load("rr1").model_dump(mode="json")


def variant(base: dict, population=None, days=None, **edits):
    """A copy of a scenario dict with scenario.population/days set and nested edits applied.

    ``edits`` maps a path like ``response.deterrence.factor`` (dots, list items by index) to a value.
    """
    d = copy.deepcopy(base)
    if population:
        d["scenario"]["population"] = population
    if days:
        d["scenario"]["days"] = days
    for path, value in edits.items():
        node = d
        parts = path.split("__")
        for p in parts[:-1]:
            node = node[int(p)] if p.isdigit() else node[p]
        last = parts[-1]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return scenario_from_dict(d)


def pytest_collection_modifyitems(session, config, items):
    """Tests that start JAX run last: JAX runs threads, and forking worker processes afterwards (the numpy
    runner's pool) risks deadlocks."""
    items.sort(key=lambda item: item.path.name == "test_jax_backend.py")


@pytest.fixture(scope="module")
def lab_url():
    """A `scorelab lab` server on a free port for one test module (rr1), closed after it."""
    from scorelab.lab.server import make_server, serve_in_thread

    server = make_server(0, "rr1")
    serve_in_thread(server)
    yield server.url
    server.shutdown()
    server.server_close()
    server.lab.close()
