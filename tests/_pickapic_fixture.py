"""A tiny Pick-a-Pic v2-schema world for the data-layer tests (no network, ~1 s).

Covers what the builder must handle: ties, are_different=False,
has_label=False, the same image in several rows, the same bytes under two
uids, users with too few liked images, and several shards with small row
groups (so row-group skipping is exercised).
"""

from __future__ import annotations

import datetime as dt
import io
import random
from pathlib import Path

import numpy as np
from PIL import Image


def png(rng: np.random.Generator, size: int = 8) -> bytes:
    # Random bright pixels: colorful, never all black, unique per call.
    arr = rng.integers(40, 256, size=(size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("user_id", pa.int64()),
            ("caption", pa.string()),
            ("jpg_0", pa.binary()),
            ("jpg_1", pa.binary()),
            ("label_0", pa.float64()),
            ("label_1", pa.float64()),
            ("image_0_uid", pa.string()),
            ("image_1_uid", pa.string()),
            ("best_image_uid", pa.string()),
            ("has_label", pa.bool_()),
            ("are_different", pa.bool_()),
            ("model_0", pa.string()),
            ("model_1", pa.string()),
            ("ranking_id", pa.int64()),
            ("created_at", pa.timestamp("us")),
        ]
    )


def make_rows(seed: int = 0, n_users: int = 16, n_small_users: int = 3) -> list[dict]:
    """Rows in upload order: each user writes prompts, each prompt has 4 images, pairs among them."""
    rng = np.random.default_rng(seed)
    r = random.Random(seed)
    rows: list[dict] = []
    ranking = 1000
    t0 = dt.datetime(2023, 5, 1)
    alias_pool: list[tuple[str, bytes]] = []
    for u in range(n_users + n_small_users):
        user_id = 500 + u
        small = u >= n_users
        n_prompts = 2 if small else 7
        for p in range(n_prompts):
            caption = f"user {u} prompt {p}: a {r.choice(['red', 'green', 'blue', 'gold'])} {r.choice(['cat', 'boat', 'tree'])}"
            imgs = []
            for k in range(4):
                uid = f"u{u}-p{p}-i{k}"
                data = png(rng)
                imgs.append((uid, data))
            if not small and p == 1:
                # The same bytes under a second uid (a re-upload), kept for later.
                alias_pool.append((f"alias-{u}", imgs[0][1]))
            # 6 labelled comparisons among the 4 images (images repeat across rows).
            combos = [(0, 1), (2, 3), (0, 2), (1, 3), (0, 3), (1, 2)]
            for a, b in combos:
                (ua, da), (ub, db) = imgs[a], imgs[b]
                label0 = r.choice([1.0, 0.0])
                rows.append(_row(user_id, caption, ua, da, ub, db, label0, 1.0 - label0, ranking, t0))
                ranking += 1
            # Rows the protocol drops: a tie, not different, unlabelled.
            (ua, da), (ub, db) = imgs[0], imgs[1]
            rows.append(_row(user_id, caption, ua, da, ub, db, 0.5, 0.5, ranking, t0))
            ranking += 1
            rows.append(_row(user_id, caption, ua, da, ub, db, 1.0, 0.0, ranking, t0, are_different=False))
            ranking += 1
            rows.append(_row(user_id, caption, ua, da, ub, db, 0.0, 0.0, ranking, t0, has_label=False))
            ranking += 1
    # A few rows comparing an image with its byte-identical alias (same content, two uids).
    for uid, data in alias_pool[:2]:
        orig = uid.replace("alias-", "u") + "-p1-i0"
        user_id = 500 + int(uid.split("-")[1])
        rows.append(_row(user_id, "alias row", orig, data, uid, data, 1.0, 0.0, ranking, t0))
        ranking += 1
    # A repeated ranking id (the hub's *_unique files repeat rows): kept once.
    rows.append(dict(rows[3]))
    return rows


def _row(user_id, caption, ua, da, ub, db, l0, l1, ranking, t0, are_different=True, has_label=True) -> dict:
    return {
        "user_id": user_id,
        "caption": caption,
        "jpg_0": da,
        "jpg_1": db,
        "label_0": l0,
        "label_1": l1,
        "image_0_uid": ua,
        "image_1_uid": ub,
        "best_image_uid": ua if l0 > l1 else (ub if l1 > l0 else ""),
        "has_label": has_label,
        "are_different": are_different,
        "model_0": "sdxl",
        "model_1": "sd2.1",
        "ranking_id": ranking,
        "created_at": t0 + dt.timedelta(minutes=ranking),
    }


def write_shards(
    out: Path, seed: int = 0, n_shards: int = 4, row_group_size: int = 16, rows: list[dict] | None = None, **kw
) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = rows if rows is not None else make_rows(seed, **kw)
    out.mkdir(parents=True, exist_ok=True)
    per = -(-len(rows) // n_shards)
    paths = []
    for s in range(n_shards):
        chunk = rows[s * per : (s + 1) * per]
        path = out / f"train-{s:05d}-of-{n_shards:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(chunk, schema=schema()), path, row_group_size=row_group_size)
        paths.append(path)
    return paths
