"""The synthetic taste world as Likert ratings, written in the PAMELA layout.

Same world as prefcli.data.synthetic (prompts, rendered image pool, taste
groups, users = group taste + individual variation, utility u = w_user . phi),
but each person *rates* images instead of choosing between two: a user rates
`ratings_per_user` images drawn from the shared pool (so every image is rated
by several people, as in PAMELA), with

    z = (u(image) - mean_u) / std_u + noise * N(0, 1)

(mean and std of the user's utility over the whole pool) cut into `levels`
equally likely steps of a standard normal: ratings 1..levels. The output is
the layout prefcli.data.pamela_format reads — `pamela_train.csv`,
`pamela_{val,test}_{seen,unseen}.csv` (user_id, image, rating, prompt) and
`images/<uid>.png` — so `prefcli data pamela` turns it into a dataset exactly
as it would the real files, plus `truth.json` (each user's group and the
noise-free utility of what they rated) for reference numbers.

Seen users' ratings are split by image into train / val / test; unseen users
(`unseen_frac` of the people, half in val, half in test) appear only there.
Every draw is seeded from the world's seeds and a tag of its own.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from prefcli.errors import ConfigError

_T_RATE, _T_SPLIT = 101, 102  # seed tags of their own (synthetic.py's stop below 10)


@dataclass
class RatingConfig:
    ratings_per_user: int = 60
    levels: int = 7
    noise: float = 0.5
    unseen_frac: float = 0.25
    val_frac: float = 0.15  # of a seen user's ratings
    test_frac: float = 0.25

    def validate(self) -> None:
        if self.ratings_per_user < 4:
            raise ConfigError(f"synthetic ratings: ratings_per_user must be at least 4, got {self.ratings_per_user}")
        if not 2 <= self.levels <= 100:
            raise ConfigError(f"synthetic ratings: levels must be between 2 and 100, got {self.levels}")
        if self.noise < 0:
            raise ConfigError(f"synthetic ratings: noise must be >= 0, got {self.noise}")
        for k in ("unseen_frac", "val_frac", "test_frac"):
            if not 0.0 <= getattr(self, k) < 1.0:
                raise ConfigError(f"synthetic ratings: {k} must be in [0, 1), got {getattr(self, k)}")
        if self.val_frac + self.test_frac >= 1.0:
            raise ConfigError("synthetic ratings: val_frac + test_frac must leave ratings for training")


def _cuts(levels: int) -> np.ndarray:
    from statistics import NormalDist

    return np.array([NormalDist().inv_cdf(k / levels) for k in range(1, levels)])


def write_rating_world(out_dir: str | os.PathLike, world, ratings: RatingConfig | None = None) -> dict:
    """Write the rated world to `out_dir` (created); returns a summary. `world` is a synthetic.WorldConfig."""
    from prefcli import atomic
    from prefcli.data import synthetic as syn

    rc = ratings or RatingConfig()
    rc.validate()
    world.validate()
    out = Path(out_dir)
    pool = [im for row in syn.world_pool(world) for im in row]
    if rc.ratings_per_user > len(pool):
        raise ConfigError(
            f"synthetic ratings: ratings_per_user={rc.ratings_per_user} exceeds the pool's {len(pool)} images"
        )
    W = syn.group_weight_vectors(world)
    groups = syn.user_groups(world)
    phi = np.stack([im.phi for im in pool])
    cuts = _cuts(rc.levels)
    n_unseen = int(math.floor(rc.unseen_frac * world.n_users + 0.5))
    order = syn.keyed_rng(world.world_seed, world.user_seed, _T_SPLIT).permutation(world.n_users)
    unseen = {int(u): ("val" if i % 2 == 0 else "test") for i, u in enumerate(order[:n_unseen])}
    rows: dict[str, list[dict]] = {
        name: []
        for name in ("pamela_train", "pamela_val_seen", "pamela_val_unseen", "pamela_test_seen", "pamela_test_unseen")
    }
    truth = {"users": {}, "config": {"world": world.to_dict(), "ratings": asdict(rc)}}
    used: set[int] = set()
    for u in range(world.n_users):
        w = syn.user_weights(world, W, int(groups[u]), u)
        util = phi @ w
        mu, sd = float(util.mean()), float(util.std()) or 1.0
        rng = syn.keyed_rng(world.world_seed, world.user_seed, _T_RATE, u)
        pick = rng.choice(len(pool), size=rc.ratings_per_user, replace=False)
        z = (util[pick] - mu) / sd + rc.noise * rng.standard_normal(len(pick))
        score = 1 + np.searchsorted(cuts, z)
        uid = str(syn.user_id_of(world, u))
        n = len(pick)
        n_val, n_test = int(round(rc.val_frac * n)), int(round(rc.test_frac * n))
        for j, (idx, r) in enumerate(zip(pick.tolist(), score.tolist())):
            if u in unseen:
                split = f"pamela_{unseen[u]}_unseen"
            else:
                split = "pamela_val_seen" if j < n_val else "pamela_test_seen" if j < n_val + n_test else "pamela_train"
            im = pool[idx]
            used.add(idx)
            rows[split].append({"user_id": uid, "image": f"images/{im.uid}.png", "rating": int(r), "prompt": im.prompt})
        truth["users"][uid] = {
            "group": int(groups[u]),
            "unseen": u in unseen,
            "utility": {pool[i].uid: float(util[i]) for i in pick.tolist()},
        }
    for idx in sorted(used):
        im = pool[idx]
        atomic.write_bytes(
            out / "images" / f"{im.uid}.png", syn.png_bytes(syn.render_image(im.attrs, world.image_size))
        )
    for name, rs in rows.items():
        with atomic.atomic_path(out / f"{name}.csv") as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                wr = csv.DictWriter(f, fieldnames=["user_id", "image", "rating", "prompt"])
                wr.writeheader()
                wr.writerows(rs)
    atomic.write_text(out / "truth.json", json.dumps(truth, allow_nan=False) + "\n")
    return {
        "users": world.n_users,
        "unseen_users": n_unseen,
        "images": len(used),
        "ratings": {k: len(v) for k, v in rows.items()},
    }


def truth_spearman(
    out_dir: str | os.PathLike, split_files: tuple[str, ...] = ("pamela_test_seen", "pamela_test_unseen")
) -> float:
    """Mean per-user Spearman ρ between the noise-free utility and the ratings (the best a scorer can hope for)."""
    from scipy.stats import spearmanr

    out = Path(out_dir)
    truth = json.loads((out / "truth.json").read_text())
    vals = []
    for name in split_files:
        with open(out / f"{name}.csv", newline="", encoding="utf-8") as f:
            by_user: dict[str, list[tuple[float, float]]] = {}
            for r in csv.DictReader(f):
                uid = Path(r["image"]).stem
                by_user.setdefault(r["user_id"], []).append(
                    (truth["users"][r["user_id"]]["utility"][uid], float(r["rating"]))
                )
        for pairs in by_user.values():
            a = np.array(pairs)
            if len(a) > 2 and np.ptp(a[:, 1]) > 0:
                vals.append(float(spearmanr(a[:, 0], a[:, 1]).statistic))
    return float(np.mean(vals)) if vals else float("nan")
