"""prefcli/messages.py: each warning once per run with a count, nothing for what the user asked on purpose, library noise down."""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import pytest
from PIL import Image

from prefcli import messages
from prefcli.types import Candidate, HistoryPair, RankTask, UserHistory


@pytest.fixture
def run():
    """One CLI run's message state, printed into a buffer; Python's warning machinery restored afterwards."""
    buf = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the run itself must dedupe, not Python's per-location registry
        messages.install(buf)
        try:
            yield buf
        finally:
            messages.finish()
            logging.getLogger("bitsandbytes").setLevel(logging.NOTSET)


def _lines(buf: io.StringIO) -> list[str]:
    return [ln for ln in buf.getvalue().splitlines() if ln]


def test_a_recurring_warning_is_said_once_then_counted(run):
    for _ in range(3):
        warnings.warn("the same thing", UserWarning, stacklevel=1)
    warnings.warn("another thing", UserWarning, stacklevel=1)
    assert _lines(run) == ["prefcli: warning: the same thing", "prefcli: warning: another thing"]
    messages.finish()
    assert _lines(run)[2:] == ["prefcli: warning: said 3 times in this run (printed once above): the same thing"]


def test_clip_truncation_of_many_prompts_is_one_line_with_a_count(run):
    """diffusers logs CLIP's truncation once per prompt and text encoder, through its own handler."""
    lib = logging.getLogger("diffusers_like_lib")
    lib.propagate = False
    handler = logging.StreamHandler(io.StringIO())
    lib.addHandler(handler)
    try:
        messages.watch("diffusers_like_lib")
        for i in range(12):
            lib.warning(
                "The following part of your input was truncated because CLIP can only handle sequences up to 77 tokens: "
                f"['tail number {i}']"
            )
        for n in (82, 90):  # the tokenizer's note of the same event, once per tokenizer
            lib.warning(
                f"Token indices sequence length is longer than the specified maximum sequence length for this model ({n} > 77). "
                "Running this sequence through the model will result in indexing errors"
            )
        lib.warning("something else from the library")
        lib.warning("something else from the library")
    finally:
        lib.removeHandler(handler)
    assert handler.stream.getvalue() == "something else from the library\n"  # a library's other warnings: once
    messages.finish()
    lines = _lines(run)
    assert (
        lines[0]
        == "prefcli: warning: a prompt is longer than the text encoder's 77 tokens; it reads the first 77 and the rest is cut"
    )
    assert len(lines) == 3 and lines[1].startswith("prefcli: warning: said 14 times in this run")
    assert (
        lines[2] == "prefcli: warning: said 2 times in this run (printed once above): something else from the library"
    )


def test_library_noise_is_silenced_unless_it_concerns_the_run(run):
    warnings.warn(
        "`is_gradient_checkpointing` is deprecated and will be removed in v6. Use `is_activation_checkpointing` instead.",
        FutureWarning,
        stacklevel=1,
    )
    assert _lines(run) == []
    bnb = logging.getLogger("bitsandbytes.cextension")
    assert not bnb.isEnabledFor(logging.WARNING)  # bitsandbytes' CUDA-library notes when nothing is quantized
    messages.allow_bitsandbytes()
    assert bnb.isEnabledFor(logging.WARNING)


def _img(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(1, 255, (40, 40, 3), dtype=np.uint8))


def _history(n: int, prompts: bool) -> UserHistory:
    return UserHistory(
        tuple(
            HistoryPair(
                liked=Candidate.from_image(_img(2 * i)),
                disliked=Candidate.from_image(_img(2 * i + 1)),
                prompt=f"prompt {i}" if prompts else None,
            )
            for i in range(n)
        ),
        user_id="u",
    )


@pytest.fixture(scope="module")
def preftoken():
    from prefcli.plugins import load_scorer

    return load_scorer("preftoken", weights="tiny")  # trained with N_ref 8


def _tasks(n_ref):
    cands = [Candidate.from_image(_img(100 + i), prompt="a cat") for i in range(2)]
    return [
        RankTask(task_id=f"t{k}", candidates=cands, liked_index=0, history=_history(k, True), n_ref=n_ref and k)
        for k in (1, 2)
    ]


def test_an_nref_sweep_does_not_warn_about_the_lengths_it_asked_for(preftoken):
    from prefcli.harness.runner import run_scorer

    preftoken._noted.clear()
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        run_scorer(preftoken, _tasks(n_ref=True), batch_size=4)
    assert [str(w.message) for w in got if "trained with" in str(w.message)] == []
    # A history the user gave without asking for its length (rank's folders) still gets the note.
    with pytest.warns(UserWarning, match=r"has 1 liked/disliked pair\(s\) but the model was trained with 8"):
        run_scorer(preftoken, _tasks(n_ref=None)[:1], batch_size=4)


def test_history_without_prompts_names_what_gives_them(preftoken):
    """`rank --prompt x` gives the candidates a prompt, not the history: the note must not ask for --prompt."""
    preftoken._noted.clear()
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        preftoken.condition(_history(8, prompts=False))
    (note,) = [str(w.message) for w in got]
    assert "history pairs without a prompt" in note and "--history-prompts FILE" in note
    assert "--prompt TEXT" not in note
