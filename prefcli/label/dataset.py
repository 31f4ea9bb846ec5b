"""`prefcli data labels`: label folders (from `prefcli label`) become a prefcli dataset.

Every person's left/right answers become pairs of the `test` split, as
unseen users (no model has trained on them), and their evaluation tasks are
held out per person exactly as for every other dataset (prefcli.data.tasks:
a target pair, the other pairs of the same person as history). Ties and
skips stay out, as in the folders. Images are read from the person's
liked/ and disliked/ folders, by the names label gave them, and stored by
content id; an image whose content is not the logged id is reported and its
pair skipped. The build resumes like the other importers
(prefcli.data.importing).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from prefcli.errors import DataError


def read_labels(person: Path) -> list[dict]:
    """The effective label records of one label folder (read only; never writes there)."""
    from prefcli.label.store import LOG, effective, read_log

    if not (person / LOG).is_file():
        raise DataError(f"{person}: not a label folder (no {LOG}; it is written by prefcli label)")
    return effective(read_log(person / LOG)[0])


def build(
    people: list[str | os.PathLike], out: str | os.PathLike, *, n_ref: int = 4, seed: int = 0, name: str | None = None
):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prefcli import __version__ as version
    from prefcli.atomic import atomic_path
    from prefcli.data.dataset import FORMAT_VERSION, PAIRS_FILE, TASKS_FILE, pairs_schema, tasks_schema
    from prefcli.data.importing import ImportResult, Workspace, already_built, image_store_counts
    from prefcli.data.tasks import build_tasks
    from prefcli.label.store import DISLIKED, LIKED, LOG, file_name

    out = Path(out)
    if n_ref < 1:
        raise DataError(f"--n-ref must be at least 1, got {n_ref}")
    done = already_built(out)
    if done is not None:
        return done
    folders = [Path(p) for p in people]
    logs = {}
    for p in folders:
        recs = read_labels(p)
        logs[str(p.resolve())] = (p, recs)
    fingerprint = {
        "importer": "labels",
        "n_ref": n_ref,
        "seed": seed,
        "logs": {k: hashlib.sha256((Path(k) / LOG).read_bytes()).hexdigest() for k in logs},
    }
    ws = Workspace(out, fingerprint)
    rows, problems, users = [], [], {}
    for _key, (folder, recs) in logs.items():
        user = str(next((r.get("user") for r in recs if r.get("user")), folder.name))
        if user in users:  # two folders labelled as the same name are still two people
            user = f"{user}@{folder.name}"
        users[user] = str(folder)
        for r in recs:
            if r.get("choice") not in ("left", "right"):
                continue
            win, lose = (r["left"], r["right"]) if r["choice"] == "left" else (r["right"], r["left"])
            ids = []
            for sub, side in ((LIKED, win), (DISLIKED, lose)):
                path = folder / sub / file_name(r["seq"], side["id"], side.get("path", ""))
                cid, reason = ws.store_file(path, f"{folder.name}/{sub}/{path.name}")
                if cid is not None and cid != side["id"]:
                    cid, reason = None, f"{path}: not the image labelled (content changed since)"
                if cid is None:
                    problems.append({"where": str(path), "reason": reason or "unreadable"})
                    break
                ids.append(cid)
            if len(ids) == 2:
                rows.append(
                    {
                        "pair_id": f"{user}-{r['seq']:05d}",
                        "user_id": user,
                        "prompt": r.get("prompt") or "",
                        "liked_image_id": ids[0],
                        "disliked_image_id": ids[1],
                        "split": "test",
                        "seen": False,
                    }
                )
    if not rows:
        raise DataError(f"{', '.join(str(p) for p in folders)}: no left/right answers to turn into pairs")
    tasks, stats = build_tasks(rows, n_ref, seed)
    with atomic_path(ws.root / PAIRS_FILE) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=pairs_schema()), tmp)
    with atomic_path(ws.root / TASKS_FILE) as tmp:
        pq.write_table(pa.Table.from_pylist(tasks, schema=tasks_schema()), tmp)
    images = {i for r in rows for i in (r["liked_image_id"], r["disliked_image_id"])}
    n1 = sum(1 for t in tasks if t["protocol"] == "1v1")
    n3 = sum(1 for t in tasks if t["protocol"] == "1v3")
    info = {
        "name": name or out.name,
        "format_version": FORMAT_VERSION,
        "created_by": f"prefcli {version}",
        "kind": "labels",
        "source": {"label_folders": users},
        "build": {"n_ref": n_ref, "seed": seed, "split": "test (every labelled person is an unseen user)"},
        "seed": seed,
        "counts": {
            "splits": {
                "train": {"users": 0, "pairs": 0, "images": 0},
                "val": {"users": 0, "pairs": 0, "images": 0},
                "test": {
                    "users": len({r["user_id"] for r in rows}),
                    "pairs": len(rows),
                    "images": len(images),
                    "seen_users": 0,
                    "unseen_users": len({r["user_id"] for r in rows}),
                },
            },
            "tasks": {
                "val": {"1v1": 0, "1v3": 0, "rows": 0},
                "test": {
                    "1v1": stats.get("test", {}).get("1v1_targets", 0),
                    "1v3": stats.get("test", {}).get("1v3_targets", 0),
                    "rows": n1 + n3,
                },
            },
        },
        "task_stats": stats,
        "image_store": image_store_counts(ws.root),
        "problems_total": len(problems),
        "problems": problems[:1000],
    }
    ws.commit(info)
    return ImportResult(out, info, problems=problems)
