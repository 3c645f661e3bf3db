"""Experiments: many runs of one synthetic society.

- `compare`: two or more policies (or scenarios) on the same population with common random numbers,
  paired differences of every summary metric with t-based confidence intervals, an offline HTML report.
- `sweep`: a grid or random draws over scenario parameters addressed by dotted path, replicates, local
  worker processes or a Dask cluster, one Hive-partitioned run directory per run, resumable after a kill.
- `query`: DuckDB over every run's tables in a sweep or comparison directory.
"""
