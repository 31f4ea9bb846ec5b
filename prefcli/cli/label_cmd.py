"""`prefcli label`: a local page where one person compares two images at a time."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from prefcli.cli import app
from prefcli.cli.eval_cmd import CacheDirOpt
from prefcli.cli.options import (
    DeviceOpt,
    DType,
    DTypeOpt,
    OfflineOpt,
    OptionPairsCommand,
    ScorerOptionsOpt,
    WeightsOpt,
    scorer_options,
)

INSTALL_HINT = "prefcli label needs the web server extra: pip install 'prefcli[label]'"


class StrategyName(str, Enum):
    active = "active"
    random = "random"


@app.command("label", cls=OptionPairsCommand)
def label_command(
    pool: Annotated[
        Path,
        typer.Argument(
            help="Folder of candidate images; images of one prompt share a subfolder, or give --prompts.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="The person's folder: labels.jsonl, liked/, disliked/, prompts.json. Resumes when it exists.",
            show_default=False,
        ),
    ],
    prompts: Annotated[
        Path | None,
        typer.Option(
            "--prompts",
            help="Group the pool by prompt: JSON {file: prompt} or CSV file,prompt (as rank reads it). Default: by subfolder.",
        ),
    ] = None,
    pairs: Annotated[
        int, typer.Option("--pairs", min=1, help="Answers to collect in this session (counting earlier ones in --out).")
    ] = 16,
    strategy: Annotated[
        StrategyName,
        typer.Option(
            "--strategy",
            help="active: the pair the person's model is least sure about (most informative); random: random same-prompt pairs.",
        ),
    ] = StrategyName.active,
    scorer: Annotated[
        str,
        typer.Option(
            "--scorer", "-s", help="The personal scorer whose embeddings and per-person model choose pairs (a *-probe)."
        ),
    ] = "clip-probe",
    weights: WeightsOpt = None,
    option: ScorerOptionsOpt = None,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    offline: OfflineOpt = False,
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on. Default: loopback only (this machine).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port; 0 picks a free one.")] = 0,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the page in a browser.")] = False,
    user: Annotated[str, typer.Option("--user", help="Name recorded with every label.")] = "me",
    max_appearances: Annotated[
        int, typer.Option("--max-appearances", min=1, help="Show each image in at most this many pairs.")
    ] = 4,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed of the pair order and the sides (default: random sides, fixed pair order)."),
    ] = None,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Label one person's likes and dislikes in a local web page, two images at a time.

    Serves a page on this machine (a random token in the URL, as Jupyter
    does) showing two images of the same prompt: press ← or 1 for the left
    one, → or 2 for the right one, T for a tie, S to skip a bad pair, U to
    undo, C to type a comment. Every answer is appended to PERSON/labels.jsonl
    at once, and PERSON/liked/, PERSON/disliked/ and PERSON/prompts.json are
    rewritten from it: exactly what `rank`, `generate`, `eval` and `train`
    read. Stop with Ctrl-C; the same command resumes and never shows a pair
    twice.

    Examples:

        prefcli label ./pool --out ./alice

        prefcli label ./pool --out ./alice --prompts pool-prompts.json --pairs 32 --strategy random --open

        prefcli rank ./new-images --likes ./alice/liked --dislikes ./alice/disliked
    """
    import secrets

    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        from prefcli.errors import PrefcliError

        raise PrefcliError(INSTALL_HINT) from None
    from prefcli.label.embed import embed_pool
    from prefcli.label.model import PairModel, reduce
    from prefcli.label.pool import load_pool
    from prefcli.label.server import bind, is_loopback, make_app, serve, url_of
    from prefcli.label.session import LabelSession
    from prefcli.label.store import LabelStore
    from prefcli.label.strategies import make_strategy
    from prefcli.lock import output_lock

    if offline:
        os.environ["PREFCLI_OFFLINE"] = "1"
        os.environ["HF_HUB_OFFLINE"] = "1"
    the_pool = load_pool(pool, prompts)
    for path, reason in the_pool.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    with output_lock(out, "prefcli label"):
        store = LabelStore(out)
        emb, scorer_id = embed_pool(
            the_pool, scorer, weights, device, dtype.value, scorer_options(option), cache_dir=cache_dir
        )
        model = PairModel(reduce(emb))
        strat = make_strategy(strategy.value, model, seed=seed or 0, max_appearances=max_appearances)
        session = LabelSession(
            the_pool,
            store,
            strat,
            target=pairs,
            user=user,
            scorer=scorer_id,
            seed=seed,
            pool_arg=str(pool),
            out_arg=str(out),
        )
        for p in session.problems:
            print(f"note: {p}", file=sys.stderr)
        done = store.counts()["answered"]
        print(
            f"{len(the_pool.images)} image(s) in {len(the_pool.prompts)} prompt(s); {done} answer(s) already in {out}"
            if done
            else f"{len(the_pool.images)} image(s) in {len(the_pool.prompts)} prompt(s)",
            file=sys.stderr,
        )
        token = secrets.token_hex(24)  # hex: safe in any URL and page
        sock = bind(host, port)
        url = url_of(sock, host, token)
        if not is_loopback(host):
            print(
                f"note: --host {host} is not the loopback address: anyone who can reach this machine on port "
                f"{sock.getsockname()[1]} and has the token can label as {user}",
                file=sys.stderr,
            )
        print(f"label at {url}", flush=True)
        print("press Ctrl-C to stop; run the same command again to resume", file=sys.stderr, flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        try:
            serve(make_app(session, token), sock)
        finally:
            sock.close()
        c = store.counts()
        print(
            f"wrote {out}/labels.jsonl; {c['pairs']} liked/disliked pair(s) in {out}/liked and {out}/disliked",
            file=sys.stderr,
        )
