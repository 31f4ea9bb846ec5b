"""Users clustered by how the model reads them (the seed paper's table 5).

Every user's history is followed by the same fixed target; the language
model's final hidden state at the target's last token (the vector the
"+"/"-" logits are read from) is that user's embedding. K-means groups the
embeddings; the silhouette (higher is better) and Davies–Bouldin index
(lower is better) are scikit-learn's. On a synthetic world the true taste
group of every user is known, so the adjusted Rand index between clusters
and groups says whether the model separates people the way the world does
(1 = the same partition, 0 = chance).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prefcli.errors import ConfigError


def final_token_embeddings(
    vlm: Any, users: Sequence[Any], target: Any, batch_size: int = 16, progress: Callable[[int], None] | None = None
) -> Any:
    """(users, D) float64: the last layer's hidden state at each sequence's last real token."""
    import numpy as np
    import torch

    from prefcli.vlm.model import last_real_index
    from prefcli.vlm.template import eval_history_items

    out = []
    for start in range(0, len(users), batch_size):
        chunk = users[start : start + batch_size]
        seqs = [vlm.encoder.encode(eval_history_items(u.history), target.candidate, target.prompt) for u in chunk]
        batch = vlm.make_batch(seqs)
        with torch.no_grad():
            emb = vlm.embed(batch.input_ids, batch.pixel_values)
            emb, mask = vlm.with_pref_tokens(emb, batch.attention_mask, batch.padding_side)
            hidden = vlm.run_text(emb, mask).last_hidden_state
            idx = last_real_index(mask)
            out.append(hidden[torch.arange(len(chunk)), idx].double().cpu().numpy())
        if progress:
            progress(len(chunk))
    return np.concatenate(out, axis=0)


def cluster_scores(X: Any, k: int, seed: int = 0) -> dict:
    """K-means labels, silhouette and Davies–Bouldin of `X` (rows are users), all from scikit-learn."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    n = X.shape[0]
    if not 2 <= k < n:
        raise ConfigError(f"--k {k}: K-means needs 2 <= K < number of users ({n})")
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(X)
    if len(set(labels.tolist())) < 2:
        return {"k": k, "labels": labels.tolist(), "silhouette": None, "davies_bouldin": None}
    return {
        "k": k,
        "labels": labels.tolist(),
        "silhouette": float(silhouette_score(X, labels)),
        "davies_bouldin": float(davies_bouldin_score(X, labels)),
    }


def agreement(labels: Sequence[int], truth: Sequence[int]) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(list(truth), list(labels)))


def projection(X: Any, seed: int = 0) -> tuple[Any, list[float]]:
    """2-D PCA of the embeddings and the share of variance each axis explains."""
    from sklearn.decomposition import PCA

    p = PCA(n_components=2, random_state=seed)
    Y = p.fit_transform(X)
    return Y, [float(v) for v in p.explained_variance_ratio_]


def k_sweep(X: Any, ks: Sequence[int], seed: int = 0, truth: Sequence[int] | None = None) -> list[dict]:
    rows = []
    for k in ks:
        s = cluster_scores(X, k, seed)
        row = {"k": k, "silhouette": s["silhouette"], "davies_bouldin": s["davies_bouldin"]}
        if truth is not None:
            row["ari"] = agreement(s["labels"], truth)
        rows.append(row)
    return rows


def clusters_table(rows: list[dict], has_truth: bool):
    from prefcli.harness.tables import Column, Table

    cols = [
        Column("k", "K"),
        Column("silhouette", "Silhouette ↑", digits=3, better="max"),
        Column("davies_bouldin", "Davies–Bouldin ↓", digits=3, better="min"),
    ]
    if has_truth:
        cols.append(Column("ari", "ARI with true groups ↑", digits=3, better="max"))
    note = "K-means on the final-token embedding of one fixed target across users (scikit-learn)"
    if has_truth:
        note += "; ARI = adjusted Rand index between the clusters and the synthetic world's taste groups"
    return Table("clusters", "User clustering", cols, [dict(r) for r in rows], note=note)


def clusters_figure(
    Y: Any, var: Sequence[float], labels: Sequence[int], truth: Sequence[int] | None, ari: float | None, stem: Any
) -> list:
    """The 2-D projection coloured (and marked) by cluster, and beside it by true group."""
    import numpy as np

    from prefcli import figures

    plt = figures.pyplot()
    panels = [("K-means cluster", list(labels), "cluster")]
    if truth is not None:
        panels.append((f"true taste group (ARI {ari:.2f})", list(truth), "group"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels) + 1.2, 3.1), squeeze=False)
    for ax, (title, lab, word) in zip(axes[0], panels):
        lab = np.asarray(lab)
        for j, v in enumerate(sorted(set(lab.tolist()))):
            st = figures.series_style(j)
            sel = lab == v
            ax.scatter(
                Y[sel, 0],
                Y[sel, 1],
                s=22,
                color=st["color"],
                marker=st["marker"],
                edgecolors="black",
                linewidths=0.4,
                label=f"{word} {v}",
                alpha=0.85,
            )
        ax.set_title(title)
        ax.set_xlabel(f"PC 1 ({100 * var[0]:.0f}% of variance)")
        ax.set_ylabel(f"PC 2 ({100 * var[1]:.0f}% of variance)")
        ax.grid(alpha=0.3, linewidth=0.5)
    fig.tight_layout()
    for ax in axes[0]:
        figures.legend_outside(ax)
    fig.tight_layout()
    paths = figures.save_figure(fig, stem)
    plt.close(fig)
    return paths
