"""prefcli first-party plugin: `blend`, a scorer of scorers.

score = z(general) + w · z(personal), each part standardised over the
candidates of one ranking together with the person's history images, and w
chosen per person by leave-one-out over their history pairs, shrunk toward a
population w (docs/scorers/blend.md). Nothing heavy is imported here; the
parts load only when something is scored.
"""

from __future__ import annotations

from prefcli.hookspecs import hookimpl
from prefcli.options import Options, extend, option
from prefcli.scorer import ScorerSpec

#: The population w: what a person's w is shrunk toward, and the w of a history too short to grade.
#: A judgement, not a fit on real people (docs/scorers/blend.md, "The population w"): leaning general,
#: as real users' choices do and as three of bench/bench_blend.py's four worlds fit it.
POPULATION_WEIGHT = 0.5
#: How many history pairs the population w is worth in the shrinkage.
SHRINKAGE = 4.0


def _weight(value: str) -> str:
    """'auto', or a non-negative number (kept as its canonical text, so the cache identity is stable)."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    try:
        w = float(text)
    except ValueError:
        raise ValueError("expected auto or a number ≥ 0") from None
    if not w >= 0 or w == float("inf"):
        raise ValueError("expected auto or a finite number ≥ 0")
    return repr(w)


def _population_weight(value: str) -> str:
    """A number ≥ 0 (kept as its canonical text), or a population-w file written by `eval --fit-blend` (checked now)."""
    text = str(value).strip()
    try:
        w = float(text)
    except ValueError:
        from prefcli_blend import population

        population.read(text)  # ValueError naming the file and the reason
        return text
    if not w >= 0 or w == float("inf"):
        raise ValueError("expected a finite number ≥ 0 or a file written by prefcli eval --fit-blend")
    return repr(w)


BlendOptions = extend(
    Options,
    "BlendOptions",
    general=(
        str,
        option(
            "pickscore",
            "The general (history-free, pointwise) scorer: pickscore, hpsv2, imagereward, aesthetic, clip, a trained population model (preftoken with its weights), ...",
        ),
    ),
    personal=(
        str,
        option(
            "clip-probe",
            "The personal scorer (reads the history): clip-probe or another probe, preftoken, viper, idefics.",
        ),
    ),
    weight=(
        str,
        option(
            "auto",
            "w in z(general) + w·z(personal): auto (per person, leave-one-out over the history pairs, shrunk toward population_weight) or a number ≥ 0.",
            parse=_weight,
        ),
    ),
    population_weight=(
        str,
        option(
            repr(POPULATION_WEIGHT),
            "The population w: auto shrinks each person's w toward it; also the w when the history has fewer than 2 pairs. A number, or a file written by prefcli eval --fit-blend.",
            parse=_population_weight,
        ),
    ),
    shrinkage=(
        float,
        option(
            SHRINKAGE,
            "How many history pairs the population w counts as (0: the person's leave-one-out w alone).",
            min=0.0,
        ),
    ),
    general_weights=(
        str | None,
        option(None, "Weights of the general scorer (default: --weights, else its own default).", weights=True),
    ),
    personal_weights=(
        str | None,
        option(None, "Weights of the personal scorer (default: --weights, else its own default).", weights=True),
    ),
)


@hookimpl
def register_scorers(register):
    register(
        ScorerSpec(
            name="blend",
            factory="prefcli_blend.scorer:BlendScorer",
            description="z(general) + w·z(personal), w per person by leave-one-out: never far below the general scorer",
            needs=frozenset({"image", "history"}),
            higher_is_better=True,
            trainable=False,
            differentiable=False,
            default_weights="",
            install_hint="the blend needs its two parts installed (see `prefcli scorers pickscore`, `prefcli scorers clip-probe`)",
            requires=(),
            options=BlendOptions,
            version=1,
            kind="composite",
            weights_forms=(
                "--weights is given to both parts unless -o general_weights / -o personal_weights name their own",
                "tiny / tiny:SEED: both parts as tiny random models (offline)",
            ),
        )
    )
