"""Small labelling pools for the label tests: rendered synthetic-world images in prompt subfolders."""

from __future__ import annotations

from pathlib import Path


def make_pool(root: Path, prompts: int = 2, per_prompt: int = 5, size: int = 32, seed: int = 0) -> Path:
    """root/<prompt>/<k>.png: distinct, never dark images (safe for every scorer)."""
    import numpy as np

    from prefcli.data import synthetic

    rng = np.random.default_rng(seed)
    for p in range(prompts):
        content = synthetic.CONTENTS[p % len(synthetic.CONTENTS)]
        d = root / f"a {content}"
        d.mkdir(parents=True, exist_ok=True)
        for k in range(per_prompt):
            synthetic.render_image(synthetic.sample_attrs(rng, content), size=size).save(d / f"{k:02d}.png")
    return root


def make_session(
    pool_dir: Path, out: Path, *, strategy: str = "random", target: int = 100, seed: int = 0, max_appearances: int = 4
):
    """A LabelSession on `pool_dir` with random embeddings (no model to load: fast and offline)."""
    import numpy as np

    from prefcli.label.model import PairModel, reduce
    from prefcli.label.pool import load_pool
    from prefcli.label.session import LabelSession
    from prefcli.label.store import LabelStore
    from prefcli.label.strategies import make_strategy

    pool = load_pool(pool_dir)
    z = reduce(np.random.default_rng(seed).standard_normal((len(pool.images), 8)))
    strat = make_strategy(strategy, PairModel(z), seed=seed, max_appearances=max_appearances)
    return LabelSession(
        pool, LabelStore(out), strat, target=target, user="tester", scorer="random-embeddings", seed=seed
    )


def serve_main(argv: list[str]) -> None:
    """`python tests/label_fixtures.py POOL OUT`: serve a session on a free port, print its URL, run until killed."""
    import secrets
    import sys

    from prefcli.label.server import bind, make_app, serve, url_of

    session = make_session(Path(argv[0]), Path(argv[1]), strategy="active", max_appearances=9)
    token = secrets.token_hex(24)
    sock = bind("127.0.0.1", 0)
    print(url_of(sock, "127.0.0.1", token), flush=True)
    sys.stdout.flush()
    serve(make_app(session, token), sock)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    serve_main(sys.argv[1:])
