"""What a run did to people: audit metrics (metrics.py), compliance checks (compliance.py), the offline
HTML report (report.py) and one citizen's explanation (explain.py). See docs/audit.md.

The package is also callable: ``scorelab.audit(run)`` returns the audit tables as DataFrames
(scorelab.notebook.audit)."""

import sys as _sys
import types as _types


class _CallableModule(_types.ModuleType):
    def __call__(self, run, **options):
        from ..notebook import audit

        return audit(run, **options)


_sys.modules[__name__].__class__ = _CallableModule
