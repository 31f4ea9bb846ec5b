"""`prefcli label`: collect one person's likes and dislikes, choosing the pairs that teach the most.

- `pool`: the candidate images, grouped into prompts (prompts file or subfolder).
- `model`: the per-person pairwise model over the pool's embeddings (a Laplace
  posterior), what the active strategy asks and what the log records.
- `strategies`: which pair to show next (`random`, `active`); a small interface.
- `store`: the append-only `labels.jsonl` and the folders rebuilt from it.
- `session`: one labelling session (pool + strategy + store), used by the server.
- `server`: the local web page (Starlette), token-checked, images by id only.
- `simulate`: a synthetic-world person who answers, for measurement.

Nothing here imports torch, starlette or uvicorn at module level.
"""
