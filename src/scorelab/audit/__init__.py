"""What a run did to people: audit metrics (metrics.py), compliance checks (compliance.py), the offline
HTML report (report.py) and one citizen's explanation (explain.py). See docs/audit.md."""
