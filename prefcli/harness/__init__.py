"""The evaluation harness: every scorer is measured on the same tasks, the same way.

- `runner`: turns a scorer and a list of RankTasks into per-task scores, with
  batching, on-disk caching, one `condition()` per distinct history and
  resume after interruption.
- `metrics`: top-k accuracy (ties count against the liked image) and
  bootstrap standard errors over users.
- `cache`: the sqlite score / embedding store, one file per (scorer, weights).
- `results`: result records and their provenance.
- `tables` / `plots`: the paper's tables and the accuracy-vs-N_ref plot.

Scorers never compute metrics; the harness owns them. Nothing heavy is
imported at module level.
"""
