"""Nearest vocabulary tokens of each preference token (the paper's table 7).

Distances are Euclidean, between a preference token P_i (a row of the
learned L_p × D matrix) and every row of the language model's input
embedding matrix, computed in float64. Special tokens (``<image>``,
``<end_of_utterance>``, padding, ...) are left out unless asked for: they
are not words. ``scale`` gives a yardstick: the median distance from a
vocabulary token to its own nearest other vocabulary token, so a reader can
tell "near a word" from "far from every word".
"""

from __future__ import annotations

from typing import Any

from prefcli.analyze.scripts import display, script_of
from prefcli.errors import ConfigError


def vocabulary(vlm: Any, include_special: bool = False) -> tuple[Any, list[int]]:
    """(embedding rows as float64, their token ids) over the tokenizer's real tokens."""
    import torch

    emb = vlm.text_model.get_input_embeddings().weight.detach().to("cpu", torch.float64)
    n = min(len(vlm.tokenizer), emb.shape[0])  # rows past the tokenizer are padding of the matrix
    special = set() if include_special else set(vlm.tokenizer.all_special_ids) | {vlm.image_token_id}
    ids = [i for i in range(n) if i not in special]
    return emb[ids], ids


def nn_scale(rows: Any, sample: int = 512, seed: int = 0) -> float:
    """Median distance from a vocabulary row to its nearest other row (on a seeded sample)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(rows.shape[0], generator=g)[: min(sample, rows.shape[0])]
    d = torch.cdist(rows[idx], rows)
    d[torch.arange(len(idx)), idx] = float("inf")
    return float(d.min(dim=1).values.median())


def nearest_tokens(vlm: Any, k: int = 5, include_special: bool = False, progress: Any = None) -> dict:
    """{"tokens": [{"index", "neighbours": [{"rank", "id", "piece", "text", "script", "distance"}]}], ...}."""
    import torch

    if vlm.pref_tokens is None:
        raise ConfigError(
            "this checkpoint has no preference tokens (train a stage with add_tokens, or use one that has them)"
        )
    if k < 1:
        raise ConfigError(f"--k must be at least 1, got {k}")
    rows, ids = vocabulary(vlm, include_special)
    k = min(k, len(ids))
    P = vlm.pref_tokens.weight.detach().to("cpu", torch.float64)
    tok = vlm.tokenizer
    specials = set(tok.all_special_ids)
    out = []
    for i in range(P.shape[0]):
        d = torch.cdist(P[i : i + 1], rows)[0]
        vals, order = torch.topk(d, k, largest=False)
        neigh = []
        for r, (dist, j) in enumerate(zip(vals.tolist(), order.tolist()), start=1):
            tid = ids[j]
            piece = tok.convert_ids_to_tokens(tid)
            text = tok.convert_tokens_to_string([piece]) if piece is not None else ""
            neigh.append(
                {
                    "rank": r,
                    "id": tid,
                    "piece": piece,
                    "text": text.strip() or piece,
                    "script": script_of(piece or "", special=tid in specials),
                    "distance": dist,
                }
            )
        out.append({"index": i, "norm": float(P[i].norm()), "neighbours": neigh})
        if progress:
            progress(1)
    return {
        "tokens": out,
        "k": k,
        "vocabulary_size": len(ids),
        "dim": int(P.shape[1]),
        "scale": {"vocab_nearest_neighbour_median": nn_scale(rows)},
        "distance": "euclidean",
        "include_special": include_special,
    }


def tokens_table(res: dict):
    """Table 7's layout: one row per preference token, its k nearest tokens with distances."""
    from prefcli.harness.tables import Column, Table

    k = res["k"]
    cols = [Column("token", "Token")] + [Column(f"n{r}", f"#{r} (distance)") for r in range(1, k + 1)]
    rows = []
    for t in res["tokens"]:
        row: dict[str, Any] = {"token": f"P{t['index'] + 1}"}
        for n in t["neighbours"]:
            row[f"n{n['rank']}"] = f"{display(n['text'], n['script'], n['piece'])} ({n['distance']:.3f})"
        rows.append(row)
    scale = res["scale"]["vocab_nearest_neighbour_median"]
    note = (
        f"Euclidean distance in the input-embedding space (D = {res['dim']}); for scale, a vocabulary token's "
        f"nearest other token is {scale:.3f} away (median). [script] marks a token not in Latin script."
    )
    return Table("tokens", "Preference tokens → nearest vocabulary tokens", cols, rows, note=note)


def long_rows(res: dict) -> list[dict]:
    """One CSV row per (preference token, neighbour)."""
    return [
        {
            "token": t["index"],
            "rank": n["rank"],
            "id": n["id"],
            "piece": n["piece"],
            "text": n["text"],
            "script": n["script"],
            "distance": n["distance"],
        }
        for t in res["tokens"]
        for n in t["neighbours"]
    ]


def tokens_figure(res: dict, stem: Any) -> list:
    """Each preference token's nearest vocabulary tokens on a distance axis, labelled, beside the
    vocabulary's own nearest-neighbour scale (dashed): near a word, or far from every word."""
    from prefcli import figures

    plt = figures.pyplot()
    toks = res["tokens"]
    L, k = len(toks), res["k"]
    fig, ax = plt.subplots(figsize=(6.4, 0.42 * L + 1.2))
    dmax = max(n["distance"] for t in toks for n in t["neighbours"])
    for i, t in enumerate(toks):
        y = L - 1 - i
        xs = [n["distance"] for n in t["neighbours"]]
        ax.plot(xs, [y] * len(xs), color="#999999", linewidth=0.8, zorder=1)
        ax.scatter(
            xs[:1], [y], marker="o", s=28, color=figures.PALETTE[0], zorder=3, label="nearest" if i == 0 else None
        )
        if len(xs) > 1:
            ax.scatter(
                xs[1:],
                [y] * (len(xs) - 1),
                marker="s",
                s=14,
                facecolors="white",
                edgecolors=figures.PALETTE[1],
                zorder=3,
                label=f"#2–#{k}" if i == 0 else None,
            )
        n1 = t["neighbours"][0]
        ax.annotate(
            display(n1["text"], n1["script"], n1["piece"]),
            (xs[0], y),
            xytext=(-4, 0),
            textcoords="offset points",
            ha="right",
            va="center",
            fontsize=7,
        )
    scale = res["scale"]["vocab_nearest_neighbour_median"]
    ax.axvline(scale, linestyle="--", color="black", linewidth=1, label="vocabulary token ↔ its nearest token (median)")
    ax.set_yticks(range(L))
    ax.set_yticklabels([f"P{t['index'] + 1}" for t in reversed(toks)])
    lo = min(min(n["distance"] for t in toks for n in t["neighbours"]), scale)
    ax.set_xlim(lo - 0.25 * (dmax - lo + 1e-9) - 0.02 * dmax, dmax * 1.03)
    ax.set_xlabel("Euclidean distance in the input-embedding space")
    ax.set_title("preference tokens → nearest vocabulary tokens", loc="left")
    ax.grid(axis="x", alpha=0.3, linewidth=0.5)
    fig.tight_layout()
    figures.legend_outside(ax)
    paths = figures.save_figure(fig, stem)
    plt.close(fig)
    return paths
