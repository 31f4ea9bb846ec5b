"""Attention from a target image's tokens to the preference tokens, per user, over history orders (figure 3).

For each user, the history is listed in ``orders`` random orders (pairs
shuffled, and the two images of each pair, as in training; seeded), the
fixed target is appended, and the model runs once per order with eager
attention. From layer ``layer`` we keep, for every query position of the
target's image tokens, its full attention row over the whole sequence
(causal: a softmax over the keys at or before it, so each row sums to 1) and
the part of that row that falls on the L_p preference tokens. ``head`` picks
one head; by default the heads are averaged (still rows that sum to 1).

Arrays (in ``attention.npz`` and the JSON):
- ``pref``: (users, orders, target tokens, L_p): attention on each preference token;
- ``mass``: (users, orders, target tokens): total attention on the preference tokens.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from prefcli.errors import ConfigError


def _positions(vlm: Any, seq: Any) -> list[int]:
    """Positions (after the preference tokens are prepended) of the target's <image> tokens."""
    L = vlm.n_pref_tokens
    n = len(seq.prefix.ids)
    return [L + n + i for i, t in enumerate(seq.suffix.ids) if t == vlm.image_token_id]


def attention_rows(
    vlm: Any, items: Sequence[Any], target: Any, prompt: str | None, layer: int, head: int | None
) -> tuple[Any, list[int]]:
    """(rows (target tokens, T) of layer `layer`'s attention, the target token positions)."""
    import torch

    from prefcli.vlm.model import positions_from_mask

    seq = vlm.encoder.encode(list(items), target, prompt)
    batch = vlm.make_batch([seq])
    with torch.no_grad():
        emb = vlm.embed(batch.input_ids, batch.pixel_values)
        emb, mask = vlm.with_pref_tokens(emb, batch.attention_mask)
        out = vlm.text_model(
            inputs_embeds=emb, attention_mask=mask, position_ids=positions_from_mask(mask), output_attentions=True
        )
    att = out.attentions[layer][0].float()  # (heads, T, T)
    att = att.mean(0) if head is None else att[head]
    pos = _positions(vlm, seq)
    return att[pos].cpu(), pos


def user_attention(
    vlm: Any,
    users: Sequence[Any],
    target: Any,
    *,
    orders: int = 5,
    layer: int = -1,
    head: int | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict:
    import numpy as np

    from prefcli.vlm.template import train_history_items

    L = vlm.n_pref_tokens
    if L == 0:
        raise ConfigError("this checkpoint has no preference tokens: there is no attention to them to show")
    n_layers = len(vlm.text_model.layers)
    n_heads = int(vlm.text_model.config.num_attention_heads)
    if not -n_layers <= layer < n_layers:
        raise ConfigError(
            f"--layer {layer}: the language model has {n_layers} layers (0..{n_layers - 1}, or -1 for the last)"
        )
    if head is not None and not 0 <= head < n_heads:
        raise ConfigError(f"--head {head}: the language model has {n_heads} heads (0..{n_heads - 1})")
    if orders < 1:
        raise ConfigError(f"--orders must be at least 1, got {orders}")
    pref, mass, row_sums, order_log = [], [], [], []
    for u in users:
        up, um, us, uo = [], [], [], []
        for o in range(orders):
            rng = random.Random(f"prefcli-analyze-attention|{seed}|{u.user_id}|{o}")
            items = train_history_items(u.history, rng)
            rows, _ = attention_rows(vlm, items, target.candidate, target.prompt, layer, head)
            r = rows.numpy()
            up.append(r[:, :L])
            um.append(r[:, :L].sum(1))
            us.append(r.sum(1))
            uo.append(["+" if it.label == "+" else "-" for it in items])
            if progress:
                progress(1)
        pref.append(up)
        mass.append(um)
        row_sums.append(us)
        order_log.append(uo)
    pref_a = np.asarray(pref, dtype=np.float64)
    return {
        "pref": pref_a,  # (U, O, Nt, L)
        "mass": np.asarray(mass, dtype=np.float64),  # (U, O, Nt)
        "row_sums": np.asarray(row_sums, dtype=np.float64),  # (U, O, Nt): 1 up to rounding
        "labels": order_log,
        "layer": layer if layer >= 0 else n_layers + layer,
        "head": head,
        "n_heads": n_heads,
        "n_layers": n_layers,
    }


def summary_rows(users: Sequence[Any], res: dict) -> list[dict]:
    """Per user: attention mass on the preference tokens (mean and spread over orders) and the top token."""
    import numpy as np

    rows = []
    for i, u in enumerate(users):
        mean_tok = res["pref"][i].mean(axis=(0, 1))  # (L,)
        mass = res["mass"][i].mean(axis=1)  # per order
        rows.append(
            {
                "user": u.user_id,
                "seen": u.seen,
                "mass": float(mass.mean()),
                "mass_sd": float(mass.std(ddof=1)) if len(mass) > 1 else None,
                "top_token": f"P{int(np.argmax(mean_tok)) + 1}",
                "top_weight": float(mean_tok.max()),
            }
        )
    return rows


def attention_table(rows: list[dict], res: dict):
    from prefcli.harness.tables import Column, Table

    head = "mean of heads" if res["head"] is None else f"head {res['head']}"
    cols = [
        Column("user", "User"),
        Column("mass", "Attention on P (%)", pm=True, percent=True, digits=2),
        Column("top_token", "Most attended"),
        Column("top_weight", "Its weight (%)", percent=True, digits=2),
    ]
    t_rows = [dict(r, mass_se=r["mass_sd"]) for r in rows]
    return Table(
        "attention",
        f"Target image → preference tokens (layer {res['layer']}, {head})",
        cols,
        t_rows,
        note="± standard deviation over the random history orders",
    )


def attention_figure(users: Sequence[Any], res: dict, stem: Any) -> list:
    """One heatmap per user on one colour scale: rows are target tokens (mean over orders), or the
    orders themselves and their mean when the target is a single token."""
    import numpy as np

    from prefcli import figures

    plt = figures.pyplot()
    U = len(users)
    pref = res["pref"]
    L = pref.shape[-1]
    nt = pref.shape[2]
    mats, ylabels = [], None
    for i in range(U):
        if nt == 1:
            m = np.vstack([pref[i, :, 0, :], pref[i, :, 0, :].mean(0, keepdims=True)])
            ylabels = [f"order {o + 1}" for o in range(pref.shape[1])] + ["mean"]
        else:
            m = pref[i].mean(0)
        mats.append(m)
    vmax = max(float(m.max()) for m in mats) or 1.0
    h = 0.32 * mats[0].shape[0] + 1.0 if nt == 1 else 2.6
    fig, axes = plt.subplots(U, 1, figsize=(0.45 * L + 2.2, h * U), squeeze=False)
    im = None
    for i, (ax, m) in enumerate(zip(axes[:, 0], mats)):
        im = ax.imshow(m, aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_xticks(range(L))
        ax.set_xticklabels([f"P{j + 1}" for j in range(L)])
        if ylabels:
            ax.set_yticks(range(len(ylabels)))
            ax.set_yticklabels(ylabels)
            ax.axhline(len(ylabels) - 1.5, color="white", linewidth=1.5)
        else:
            ax.set_ylabel("target image token")
        seen = users[i].seen
        ax.set_title(
            f"user {users[i].user_id}" + ("" if seen is None else (" (seen)" if seen else " (unseen)")), loc="left"
        )
    axes[-1, 0].set_xlabel("preference token")
    head = "mean of heads" if res["head"] is None else f"head {res['head']}"
    fig.suptitle(f"attention of the target image to the preference tokens · layer {res['layer']}, {head}", fontsize=9)
    fig.tight_layout()
    cb = fig.colorbar(im, ax=list(axes[:, 0]), fraction=0.04, pad=0.02)
    cb.set_label("attention weight")
    paths = figures.save_figure(fig, stem)
    plt.close(fig)
    return paths
