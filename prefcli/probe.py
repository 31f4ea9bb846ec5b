"""Per-user probes: any embedding scorer becomes a cheap personalized scorer.

`<name>-probe` fits a logistic model on the history's image embeddings
(liked = 1, disliked = 0; paired or not) and scores candidates by P(liked).
On a rated history (PAMELA) it fits ridge regression to the ratings instead
and scores by the predicted rating. A scorer opts in by
registering with `embedding=True` and implementing
`EmbeddingScorer.embed_images`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefcli.options import extend, option
from prefcli.scorer import EmbeddingScorer, Scorer, ScorerSpec
from prefcli.types import Candidate, UserHistory


def probe_specs(specs: list[ScorerSpec]) -> list[ScorerSpec]:
    out = []
    for spec in specs:
        if not spec.embedding or spec.uses_history:
            continue
        opts = extend(
            spec.options,
            f"{spec.options.__name__}WithProbe",
            C=(
                float,
                option(1.0, "Inverse strength of the probe's L2 regularisation (smaller = simpler fit).", min=1e-12),
            ),
        )
        out.append(
            ScorerSpec(
                name=f"{spec.name}-probe",
                factory="prefcli.probe:ProbeScorer",
                description=f"per-user logistic probe on {spec.name} image embeddings: P(liked)",
                needs=frozenset({"image", "history"}),
                trainable=False,
                differentiable=False,
                default_weights=spec.default_weights,
                install_hint=spec.install_hint,
                requires=tuple(spec.requires) + ("sklearn",),
                plugin=spec.plugin,
                options=opts,
                # The probe's own code and its base's both decide the score.
                version=spec.version,
                base=spec.name,
                base_spec=spec,
                weights_forms=spec.weights_forms,
            )
        )
    return out


class ProbeScorer(Scorer):
    """A per-user probe on the embeddings of `embedder`, the scorer it derives from (built by the loader,
    `ScorerSpec.load`, from the spec's `base_spec`)."""

    min_history = 1

    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        *,
        spec: ScorerSpec | None = None,
        options: Any = None,
        embedder: EmbeddingScorer | None = None,
    ):
        super().__init__(weights, device, dtype, spec=spec, options=options)
        if embedder is None:
            raise ValueError("a probe needs its base embedding scorer (embedder=); load it with ScorerSpec.load")
        self.base = embedder

    def with_embedder(self, embedder: Any) -> ProbeScorer:
        """This probe on another embedder (the runner's cached one); this probe itself is left as it is."""
        return type(self)(
            self.weights, self.device, self.dtype, spec=self.spec, options=self.options, embedder=embedder
        )

    def modules(self) -> Any:
        return self.base.modules()

    @property
    def weights_id(self) -> str:
        return self.base.weights_id

    def condition(self, history: UserHistory | None) -> Any:
        super().condition(history)
        import numpy as np

        if history.ratings:
            return self._fit_ratings(history)
        liked = history.liked_images()  # pairs' liked images, then unpaired ones (unequal numbers are fine)
        disliked = history.disliked_images()
        x = np.asarray(self.base.embed_images(liked + disliked), dtype=np.float64)
        y = np.array([1] * len(liked) + [0] * len(disliked))
        if len(set(y.tolist())) < 2:
            # One side only (a PreferImg record may list no non-preferred image): nothing
            # separates the candidates; every candidate gets the same score (a tie is a miss).
            return ("constant", float(y[0]) if y.size else 0.5)
        # Features are unit vectors whose differences are small; standardizing
        # them keeps the regularization strength meaningful across backbones.
        from sklearn.linear_model import LogisticRegression

        mean, std = x.mean(0), x.std(0) + 1e-6
        clf = LogisticRegression(C=self.options.C, max_iter=2000).fit((x - mean) / std, y)
        return ("logistic", clf, mean, std)

    def _fit_ratings(self, history: UserHistory) -> Any:
        """Ridge regression of the user's ratings on the standardized embeddings (alpha = 1/C)."""
        import numpy as np
        from sklearn.linear_model import Ridge

        x = np.asarray(self.base.embed_images([r.image for r in history.ratings]), dtype=np.float64)
        y = np.asarray([r.rating for r in history.ratings], dtype=np.float64)
        if np.ptp(y) == 0:
            return ("constant", float(y[0]))
        mean, std = x.mean(0), x.std(0) + 1e-6
        reg = Ridge(alpha=1.0 / self.options.C).fit((x - mean) / std, y)
        return ("ridge", reg, mean, std)

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        import numpy as np

        if state is None:
            raise ValueError("a probe scorer must be conditioned on a history first")
        kind, *rest = state
        if kind == "constant":
            return [rest[0]] * len(candidates)
        model, mean, std = rest
        x = np.asarray(self.base.embed_images(list(candidates)), dtype=np.float64)
        z = (x - mean) / std
        if kind == "ridge":
            return [float(v) for v in model.predict(z)]  # the predicted rating
        return [float(p) for p in model.predict_proba(z)[:, 1]]
