"""Benchmark prompt sets: HPSv2 (4 styles x 800) and ImageReward (100).

Upstream order and duplicates are kept: the list index is the prompt index
that the official benchmark image names use (HPSv2's anime list has repeated
prompts, e.g. items 120 and 326).
"""

from __future__ import annotations

import os
from pathlib import Path

from prefcli.errors import DataError
from prefcli.weights import is_offline

HPSV2_STYLES = ("anime", "concept-art", "paintings", "photo")
HPSV2_HUB_REPO = "zhwang/HPDv2"
HPSV2_HUB_FOLDER = "benchmark"
IMAGEREWARD_FILE = "benchmark-prompts.json"
IMAGEREWARD_URL = "https://raw.githubusercontent.com/THUDM/ImageReward/main/benchmark/benchmark-prompts.json"


def _read_json(path: Path):
    from prefcli.jsonio import read_json

    return read_json(path)


def _string_list(data, path: Path) -> list[str]:
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise DataError(f"{path}: expected a JSON list of prompt strings")
    if not data:
        raise DataError(f"{path}: the prompt list is empty")
    return data


def _hpsv2_download_hint(flag: str) -> str:
    files = " ".join(f"{HPSV2_HUB_FOLDER}/{s}.json" for s in HPSV2_STYLES)
    return (
        f"on a machine with network run `hf download {HPSV2_HUB_REPO} {files} --repo-type dataset --local-dir DIR` "
        f"and pass {flag} DIR (a folder with anime.json, concept-art.json, paintings.json, photo.json)"
    )


def _hub_file(filename: str, flag: str = "--source") -> Path:
    if is_offline():
        raise DataError(
            f"hf-hub:{HPSV2_HUB_REPO}/{filename}: offline mode is set (HF_HUB_OFFLINE); {_hpsv2_download_hint(flag)}"
        )
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(HPSV2_HUB_REPO, filename, repo_type="dataset"))
    except Exception as e:  # noqa: BLE001 - network and hub errors come in many types
        raise DataError(
            f"hf-hub:{HPSV2_HUB_REPO}/{filename}: cannot download ({type(e).__name__}: {e}); {_hpsv2_download_hint(flag)}"
        ) from None


def load_hpsv2_prompts(
    source: str | os.PathLike | None = None, styles=None, *, flag: str = "--source"
) -> dict[str, list[str]]:
    """{style: prompts} for the HPSv2 benchmark, from a local folder or (source None / 'hf-hub') the hub.

    `source` may also name one of the style files, or `hf-hub:zhwang/HPDv2`. `flag` is how the
    command takes `source` (`--source`, bench generate's `--prompts`), for the hints.
    """
    styles = tuple(styles) if styles else HPSV2_STYLES
    unknown = [s for s in styles if s not in HPSV2_STYLES]
    if unknown:
        raise DataError(f"unknown HPSv2 style(s) {', '.join(unknown)}; choose from {', '.join(HPSV2_STYLES)}")
    out: dict[str, list[str]] = {}
    hub = source is None or str(source) in ("hf-hub", f"hf-hub:{HPSV2_HUB_REPO}")
    if hub:
        for s in styles:
            path = _hub_file(f"{HPSV2_HUB_FOLDER}/{s}.json", flag)
            out[s] = _string_list(_read_json(path), path)
        return out
    root = Path(source).expanduser()
    if root.is_file():
        root = root.parent
    if not root.is_dir():
        raise DataError(
            f"{source}: prompt folder not found (it should hold {', '.join(s + '.json' for s in HPSV2_STYLES)})"
        )
    for s in styles:
        path = root / f"{s}.json"
        if not path.is_file() and (root / HPSV2_HUB_FOLDER / f"{s}.json").is_file():
            path = root / HPSV2_HUB_FOLDER / f"{s}.json"  # a snapshot of the whole hub dataset
        if not path.is_file():
            raise DataError(f"{path}: HPSv2 prompt file missing (expected {s}.json in {root})")
        out[s] = _string_list(_read_json(path), path)
    return out


def load_imagereward_prompts(source: str | os.PathLike | None = None) -> list[dict]:
    """ImageReward's benchmark prompts: [{"id", "prompt"}] from a local file/folder, or the GitHub file when online."""
    if source is None:
        if is_offline():
            raise DataError(f"{IMAGEREWARD_URL}: offline mode is set; pass --source with {IMAGEREWARD_FILE}")
        import urllib.request

        try:
            with urllib.request.urlopen(IMAGEREWARD_URL, timeout=30) as r:  # noqa: S310 - fixed https URL
                from prefcli.jsonio import loads

                data = loads(r.read(1 << 24), IMAGEREWARD_URL)
        except Exception as e:  # noqa: BLE001
            raise DataError(
                f"{IMAGEREWARD_URL}: cannot download ({type(e).__name__}: {e}); pass --source with {IMAGEREWARD_FILE}"
            ) from None
        path = Path(IMAGEREWARD_URL)
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            path = path / IMAGEREWARD_FILE
        data = _read_json(path)
    if not isinstance(data, list) or not all(isinstance(x, dict) and isinstance(x.get("prompt"), str) for x in data):
        raise DataError(f'{path}: expected a JSON list of {{"id", "prompt"}} objects')
    if not data:
        raise DataError(f"{path}: the prompt list is empty")
    return [{"id": str(x.get("id", i)), "prompt": x["prompt"]} for i, x in enumerate(data)]
