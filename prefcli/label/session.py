"""One labelling session: the pool, the strategy and the store, behind one lock.

The server calls `view()`, `answer()` and `undo()`; everything a page shows
comes from `view()`. A restart on the same --out replays the log: the pairs
already shown are never proposed again (an undone pair is shown again, that
being what undo is for).
"""

from __future__ import annotations

import datetime as _dt
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from prefcli.errors import PrefcliError
from prefcli.label.pool import Pool
from prefcli.label.store import LabelStore
from prefcli.label.strategies import LabelState, Proposal, Strategy

Y = {"left": 1.0, "right": 0.0, "tie": 0.5, "skip": None}


@dataclass
class Shown:
    token: str  # names this showing, so a stale or repeated key press cannot label another pair
    left: int
    right: int
    p_left: float | None
    flipped: bool  # True: the strategy's first image is on the right


class LabelSession:
    def __init__(
        self,
        pool: Pool,
        store: LabelStore,
        strategy: Strategy,
        *,
        target: int = 16,
        user: str = "me",
        scorer: str = "",
        seed: int | None = None,
        pool_arg: str | None = None,
        out_arg: str | None = None,
    ):
        import random

        self.pool, self.store, self.strategy = pool, store, strategy
        self.target, self.user, self.scorer = target, user, scorer
        self.pool_arg, self.out_arg = pool_arg or str(pool.root), out_arg or str(store.out)
        self._sides = random.Random(seed) if seed is not None else random.SystemRandom()
        self.lock = threading.Lock()
        self.problems: list[str] = []
        self.current: Shown | None = None
        self._replay()
        self.problems += self.store.materialise(self._source)

    # -- state -------------------------------------------------------------------------
    def _source(self, image_id: str) -> str | None:
        im = self.pool.by_id.get(image_id)
        return im.path if im is not None else None

    def _replay(self) -> None:
        self.state = LabelState(groups=self.pool.groups())
        for r in self.store.effective():
            a, b = self.pool.index.get(r["left"]["id"]), self.pool.index.get(r["right"]["id"])
            if a is not None and b is not None:
                self.state.record(a, b, Y[r["choice"]])

    def _next(self) -> None:
        if self.store.counts()["answered"] >= self.target:
            self.current = None
            return
        prop: Proposal | None = self.strategy.next_pair(self.state)
        if prop is None:
            self.current = None
            return
        flip = self._sides.random() < 0.5
        left, right = (prop.b, prop.a) if flip else (prop.a, prop.b)
        p = None if prop.p_a is None else (1.0 - prop.p_a if flip else prop.p_a)
        self.current = Shown(secrets.token_hex(8), left, right, p, flip)

    # -- what the page calls -------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        with self.lock:
            if self.current is None:
                self._next()
            return self._view()

    def answer(self, token: str, choice: str, comment: str = "", rt_ms: float | None = None) -> dict[str, Any]:
        if choice not in Y:
            raise PrefcliError(f"unknown choice {choice!r}; one of {', '.join(Y)}")
        with self.lock:
            cur = self.current
            if cur is None or token != cur.token:
                raise StalePair("that pair is no longer shown; the page shows the current one")
            L, R = self.pool.images[cur.left], self.pool.images[cur.right]
            self.store.append(
                {
                    "event": "label",
                    "user": self.user,
                    "prompt": L.prompt,
                    "left": {"id": L.image_id, "path": L.path},
                    "right": {"id": R.image_id, "path": R.path},
                    "shown": "swapped" if cur.flipped else "as-proposed",
                    "choice": choice,
                    "comment": (comment or "").strip()[:500],
                    "rt_ms": None if rt_ms is None else round(float(rt_ms)),
                    "time": _now(),
                    "strategy": self.strategy.name,
                    "scorer": self.scorer,
                    "p_left": cur.p_left,
                }
            )
            self.state.record(cur.left, cur.right, Y[choice])
            self.problems += self.store.materialise(self._source)
            self.current = None
            self._next()
            return self._view()

    def undo(self) -> dict[str, Any]:
        with self.lock:
            eff = self.store.effective()
            if not eff:
                v = self._view()
                v["message"] = "nothing to undo"
                return v
            last = eff[-1]
            self.store.append({"event": "undo", "undoes": last["seq"], "user": self.user, "time": _now()})
            self._replay()
            self.problems += self.store.materialise(self._source)
            a, b = self.pool.index.get(last["left"]["id"]), self.pool.index.get(last["right"]["id"])
            if a is not None and b is not None:
                self.current = Shown(secrets.token_hex(8), a, b, last.get("p_left"), last.get("shown") == "swapped")
            else:
                self.current = None
                self._next()
            v = self._view()
            v["message"] = f"undid label {last['seq']} ({last['choice']}); answer this pair again"
            return v

    def _view(self) -> dict[str, Any]:
        c = self.store.counts()
        v: dict[str, Any] = {
            "user": self.user,
            "strategy": self.strategy.name,
            "scorer": self.scorer,
            "progress": {
                "answered": c["answered"],
                "target": self.target,
                "pairs": c["pairs"],
                "ties": c["tie"],
                "skips": c["skip"],
            },
            "can_undo": bool(self.store.effective()),
            "message": "",
            "problems": self.problems[-5:],
        }
        cur = self.current
        if cur is not None:
            L, R = self.pool.images[cur.left], self.pool.images[cur.right]
            v["pair"] = {"token": cur.token, "prompt": L.prompt, "left": L.image_id, "right": R.image_id}
            v["done"] = False
            return v
        v["pair"] = None
        v["done"] = True
        v["exhausted"] = c["answered"] < self.target
        out = self.out_arg
        v["written"] = [
            f"{out}/labels.jsonl ({len(self.store.records)} lines)",
            f"{out}/liked/ and {out}/disliked/ ({c['pairs']} pairs)",
            f"{out}/prompts.json",
        ]
        prompt = self.pool.prompts[0] if self.pool.prompts else "a prompt"
        v["next"] = [
            f"prefcli rank {self.pool_arg} --likes {out}/liked --dislikes {out}/disliked",
            f'prefcli generate "{prompt}" --likes {out}/liked --dislikes {out}/disliked',
            f"prefcli data labels {out} --out my-dataset",
        ]
        if v["exhausted"]:
            v["message"] = (
                "The pool ran out of pairs to show: every same-prompt pair was shown, or every image "
                "reached --max-appearances. Add images to the pool (or raise --max-appearances) and "
                "run the same command again: it resumes."
            )
        else:
            v["message"] = (
                f"Done: {c['answered']} answers. Run the command again with a larger --pairs to "
                "label more; it resumes where you stopped."
            )
        return v


class StalePair(PrefcliError):
    """An answer for a pair that is not the one shown (a second tab, a repeated key press)."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
