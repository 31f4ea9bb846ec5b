"""HPSv3: μ of a Qwen2-VL reward model's (μ, σ) head, read at `<|Reward|>`.

The input is upstream's `HPSv3RewardInferencer.prepare_batch` (hpsv3 1.0.0,
inference.py lines 97-137): one user turn holding the image (see
`prefcli_hpsv3.pixels`) and the instruction with the prompt and the
`<|Reward|>` token (see `prefcli_hpsv3.prompt`), rendered with the base
model's chat template and a generation prompt, padded on the right (train.py
line 53). The network is `prefcli_hpsv3.model`. `score` returns μ and keeps σ:
`candidate_extras(candidates)` gives {"sigma": σ} for each candidate scored (rank's rows show it).

Weights: a hub repository or a local folder holding the checkpoint file
(`-o checkpoint`, default HPSv3.safetensors), or that file itself; config,
tokenizer and chat template come from the folder when it has a config.json,
else from `-o base` (default Qwen/Qwen2-VL-7B-Instruct; only its small files
are fetched). "tiny"/"tiny:SEED" writes a tiny random model in the same
format (`prefcli_hpsv3.tiny`) and loads it through the same code.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefcli.errors import OptionError, WeightsError, one_line
from prefcli.scorer import Scorer, broadcast_prompts, require_prompt
from prefcli.types import Candidate
from prefcli_hpsv3 import HPSv3Options
from prefcli_hpsv3 import prompt as P

_BASE_FILES = ["*.json", "*.txt", "*.jinja"]


def _read_json(path: Path) -> dict:
    from prefcli.jsonio import read_json

    return read_json(path, error=WeightsError, expect=dict, what="a processor config")


class HPSv3Scorer(Scorer):
    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        *,
        spec: Any = None,
        options: HPSv3Options | None = None,
    ):
        super().__init__(weights, device, dtype, spec=spec, options=options)
        opts = self.options
        if opts.max_pixels < opts.min_pixels:
            raise OptionError(f"scorer hpsv3: max_pixels ({opts.max_pixels}) is below min_pixels ({opts.min_pixels})")
        from prefcli import devices
        from prefcli import weights as W

        self.torch_device = devices.torch_device(device)
        tdtype = devices.torch_dtype(dtype, self.torch_device, getattr(self.spec, "cuda_dtype", "bfloat16"))
        if opts.load_in_4bit and self.torch_device.type != "cuda":
            raise OptionError("scorer hpsv3: load_in_4bit needs a CUDA device (bitsandbytes)")
        if not self.weights:
            raise WeightsError("hpsv3: no weights given")
        if W.is_tiny(self.weights):
            seed = W.tiny_seed(self.weights)
            self.source = f"hpsv3-tiny:{seed}"
            from prefcli_hpsv3 import tiny

            with tempfile.TemporaryDirectory(prefix="prefcli-hpsv3-") as d:
                tiny.save_tiny(d, seed)
                self._load(Path(d), Path(d) / P.CHECKPOINT, tdtype)
        else:
            base_src = W.parse(opts.base)
            # Both downloads into one folder: a weights folder with a config.json is its own base.
            then = (
                f"hf download {base_src.repo_id}{''.join(f' --include {p!r}' for p in _BASE_FILES)} --local-dir DIR"
                if base_src.kind == "hub"
                else ""
            )
            checkpoint = Path(W.resolve_file(self.weights, opts.checkpoint, then=then))
            self.checkpoint = checkpoint
            src = W.parse(self.weights)
            here = src.path if src.kind == "local" and src.path is not None else None
            folder = here if here is not None and here.is_dir() else checkpoint.parent if here is not None else None
            if folder is not None and (folder / "config.json").is_file():
                base = folder
            else:
                base = Path(W.resolve_dir(opts.base, allow_patterns=_BASE_FILES, flag="-o base"))
            self.source = str(self.weights)
            self._load(base, checkpoint, tdtype)
        self.sigma: dict[tuple[str, str], float] = {}  # (image id, prompt) → σ of every candidate scored

    def _load(self, base: Path, checkpoint: Path, dtype: Any) -> None:
        from transformers import AutoTokenizer

        from prefcli_hpsv3 import model as M
        from prefcli_hpsv3.pixels import PatchRule

        try:
            tok = AutoTokenizer.from_pretrained(str(base), padding_side="right")
        except Exception as e:  # noqa: BLE001 - transformers raises its own types; never a traceback
            raise WeightsError(
                f"{base}: cannot load the base model's tokenizer ({type(e).__name__}: {one_line(e, 200)})"
            ) from None
        # train.py lines 60-65: <|Reward|> is added as a special token; the checkpoint's embeddings include it.
        tok.add_special_tokens({"additional_special_tokens": [P.REWARD_TOKEN]})
        self.tokenizer = tok
        template = base / "chat_template.json"
        self.chat_template = (
            _read_json(template).get("chat_template") if template.is_file() else getattr(tok, "chat_template", None)
        )
        if not self.chat_template:
            raise WeightsError(
                f"{base}: no chat template (chat_template.json or the tokenizer's); HPSv3's prompt is rendered with it"
            )
        pre = base / "preprocessor_config.json"
        if not pre.is_file():
            raise WeightsError(f"{base}: no preprocessor_config.json (the Qwen2-VL image processor's settings)")
        self.patches = PatchRule(_read_json(pre))
        self.image_token = "<|image_pad|>"
        self.model = M.build(
            base,
            checkpoint,
            len(tok),
            tok.convert_tokens_to_ids(P.REWARD_TOKEN),
            self.torch_device,
            dtype,
            load_in_4bit=self.options.load_in_4bit,
        )

    def modules(self) -> Any:
        return (self.model,)

    # -- identity ----------------------------------------------------------------
    @property
    def weights_id(self) -> str:
        from prefcli.weights import identity

        return self.source if self.source.startswith("hpsv3-tiny:") else identity(str(self.checkpoint))

    # -- inputs ------------------------------------------------------------------
    def text(self, prompt: str, n_image_tokens: int) -> str:
        """The rendered conversation with the image placeholder expanded, as Qwen2VLProcessor expands it."""
        rendered = self.tokenizer.apply_chat_template(P.messages(prompt), chat_template=self.chat_template, tokenize=False,
                                                      add_generation_prompt=True)  # fmt: skip
        if rendered.count(self.image_token) != 1:
            raise ValueError(
                f"the chat template rendered {rendered.count(self.image_token)} image placeholders, expected 1"
            )
        return rendered.replace(self.image_token, self.image_token * n_image_tokens)

    def batch(self, pixels: Sequence[Any], prompts: Sequence[str]) -> dict[str, Any]:
        """Model inputs for (3, H, W) tensors in [0, 1] already at their smart_resize size, one prompt each."""
        import torch

        flat, grids, texts = [], [], []
        for x, prompt in zip(pixels, prompts):
            patches, grid = self.patches(x)
            flat.append(patches)
            grids.append(grid)
            texts.append(self.text(prompt, self.patches.tokens(grid)))
        enc = self.tokenizer(texts, padding=True, return_tensors="pt")
        dev = self.torch_device
        return {"input_ids": enc["input_ids"].to(dev), "attention_mask": enc["attention_mask"].to(dev),
                "pixel_values": torch.cat(flat, 0).to(dev), "image_grid_thw": torch.tensor(grids, device=dev)}  # fmt: skip

    def mu_sigma(self, pixels: Sequence[Any], prompts: Sequence[str]) -> Any:
        """(B, 2): μ and σ for (3, H, W) tensors at their smart_resize size."""
        return self.model(**self.batch(pixels, prompts))

    # -- the contract --------------------------------------------------------------
    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        import torch

        from prefcli_hpsv3.pixels import load_image, to_tensor

        candidates = list(candidates)
        prompts = [require_prompt(c, "hpsv3") for c in candidates]
        opts = self.options
        out: list[float] = []
        for start in range(0, len(candidates), self.batch_size):
            chunk = candidates[start : start + self.batch_size]
            # The image as opened: upstream converts it itself (a plain convert("RGB")).
            px = [to_tensor(load_image(c.original, opts.min_pixels, opts.max_pixels)) for c in chunk]
            with torch.inference_mode():
                ms = self.mu_sigma(px, prompts[start : start + self.batch_size]).float().cpu()
            for c, p, (mu, sigma) in zip(chunk, prompts[start : start + self.batch_size], ms.tolist()):
                out.append(float(mu))
                self.sigma[(c.image_id, p)] = float(sigma)
        return out

    def candidate_extras(self, candidates: Sequence[Candidate]) -> list[dict[str, Any] | None]:
        """{"sigma": σ} for each candidate `score` has seen (with its prompt), else None."""
        out: list[dict[str, Any] | None] = []
        for c in candidates:
            sigma = self.sigma.get((c.image_id, c.prompt or ""))
            out.append(None if sigma is None else {"sigma": sigma})
        return out

    def reward(self, pixels: Any, prompts: Sequence[str] | str | None = None, state: Any = None) -> Any:
        """Differentiable μ for B×3×H×W pixels in [0, 1]; one prompt per image, or one for all."""
        from prefcli_hpsv3.pixels import resize_tensor

        if pixels.dim() != 4 or pixels.shape[1] != 3:
            raise ValueError(f"expected pixels of shape B×3×H×W, got {tuple(pixels.shape)}")
        prompts = broadcast_prompts(prompts, pixels.shape[0])
        opts = self.options
        px = [resize_tensor(x.float(), opts.min_pixels, opts.max_pixels) for x in pixels.to(self.torch_device)]
        return self.mu_sigma(px, prompts)[:, 0]
