"""scorelab: simulate social scoring systems as policy-as-code over synthetic societies, and measure
what they do to people."""

from ._version import __version__

# The names below are imported when first used (PEP 562), so that `scorelab run` and `import scorelab.cli`
# do not pay for pandas and the audit: `scorelab.simulate`, `from scorelab import audit` work as before.
_LAZY = {
    "Run": ("api", "Run"), "load": ("api", "load"), "simulate": ("api", "simulate"),
    "ConfigError": ("config.loader", "ConfigError"), "list_presets": ("config.loader", "list_presets"),
    "audit": ("audit", None),  # a package that is also callable: scorelab.audit(run) -> DataFrames
    "compare": ("notebook", "compare"), "sweep": ("notebook", "sweep"),
}

__all__ = ["Run", "load", "simulate", "audit", "compare", "sweep", "ConfigError", "list_presets", "__version__"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'scorelab' has no attribute {name!r}")
    from importlib import import_module

    module, attr = _LAZY[name]
    value = import_module(f"{__name__}.{module}")
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # once: later lookups are plain attributes
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
