"""LAION aesthetic score = MLP(L2-normalized CLIP ViT-L/14 image embedding).

Weights spec (the `weights` option):
- default: the released `sac+logos+ava1-l14-linearMSE.pth` (URL, sha256 pinned);
- a local `.pth` (a plain state dict, loaded with weights_only) or
  `.safetensors` file holding the head, or any spec `prefcli.weights` resolves;
- "tiny": a seeded tiny CLIP with 768-d projections and a random head.

The CLIP backbone comes from `clip_weights` (default
`openai/clip-vit-large-patch14`; with "tiny" weights, the tiny CLIP).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefcli import clip_common, devices
from prefcli.errors import WeightsError
from prefcli.scorer import EmbeddingScorer
from prefcli.types import Candidate
from prefcli_aesthetic import DEFAULT_CLIP_WEIGHTS, DEFAULT_WEIGHTS, WEIGHTS_FILENAME, WEIGHTS_SHA256


def load_head(path: str) -> Any:
    """The MLP head from a state-dict file; any key or shape mismatch is an error."""
    from prefcli import weights as W
    from prefcli_aesthetic.mlp import EXPECTED_KEYS, AestheticMLP

    # key="state_dict" reaches into Lightning-style checkpoints; flat files load as they are.
    state = W.load_state_dict(path, key="state_dict")
    # Some re-exports wrap the head (e.g. "mlp.layers.0.weight"); accept a
    # single common prefix, nothing looser.
    keys = set(state)
    if keys != EXPECTED_KEYS:
        for prefix in {k[: k.find("layers.")] for k in keys if "layers." in k}:
            if prefix and {k[len(prefix) :] for k in keys if k.startswith(prefix)} == EXPECTED_KEYS:
                state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
                break
    keys = set(state)
    if keys != EXPECTED_KEYS:
        missing, extra = sorted(EXPECTED_KEYS - keys), sorted(keys - EXPECTED_KEYS)
        raise WeightsError(
            f"{path}: not a LAION aesthetic head: missing keys {missing[:4]}, unexpected keys {extra[:4]}"
        )
    head = AestheticMLP(input_size=int(state["layers.0.weight"].shape[1]))
    try:
        head.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise WeightsError(
            f"{path}: aesthetic head does not fit the 768→1024→128→64→16→1 MLP ({first[-1].strip() if first else e})"
        ) from e
    return head.eval()


class AestheticScorer(EmbeddingScorer):
    """Options: `clip_weights` (backbone spec), `batch_size` (default 16), `device`, `dtype`."""

    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        *,
        spec: Any = None,
        options: Any = None,
    ):
        super().__init__(weights, device, dtype, spec=spec, options=options)
        from prefcli import weights as W
        from prefcli_aesthetic.mlp import tiny_mlp

        clip_weights = self.options.clip_weights
        dev = devices.torch_device(device)
        tdtype = devices.torch_dtype(dtype, dev, getattr(self.spec, "cuda_dtype", None))
        if W.is_tiny(self.weights):
            head = tiny_mlp(W.tiny_seed(self.weights))
            clip_weights = clip_weights or self.weights
        else:
            sha = WEIGHTS_SHA256 if self.weights == DEFAULT_WEIGHTS else None
            head = load_head(str(W.resolve_file(self.weights, WEIGHTS_FILENAME, sha256=sha)))
            clip_weights = clip_weights or DEFAULT_CLIP_WEIGHTS
        self.clip_weights = clip_weights
        self.bundle = clip_common.load_clip(
            clip_weights, device=dev, dtype=tdtype, tiny_projection_dim=head.input_size, flag="-o clip_weights"
        )
        if self.bundle.embed_dim != head.input_size:
            raise WeightsError(
                f"{self.weights}: the aesthetic head takes {head.input_size}-d embeddings but the CLIP backbone "
                f"{clip_weights} gives {self.bundle.embed_dim}-d ones (it needs OpenAI CLIP ViT-L/14)"
            )
        # The head is tiny; keep it in fp32 whatever the backbone's dtype.
        self.head = head.to(dev).float()

    @property
    def weights_id(self) -> str:
        """The head's fingerprint plus the backbone's (the default backbone's hub commit included)."""
        from prefcli.weights import identity

        return f"{identity(self.weights)}+{identity(self.clip_weights)}"

    def modules(self) -> Any:
        return (self.bundle.model, self.head)

    def embed_images(self, candidates: Sequence[Candidate]) -> Any:
        """(N, 768) float32 numpy array: the L2-normalized CLIP image embeddings the head reads."""
        import numpy as np
        import torch

        out = []
        with torch.no_grad():
            for batch in clip_common.batched(list(candidates), self.batch_size):
                # The image as opened: OpenAI CLIP's preprocessing converts it (clip_common.PIPELINES).
                px = self.bundle.pixel_values([c.original for c in batch])
                out.append(clip_common.image_features(self.bundle.model, px).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.bundle.embed_dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def score_embeddings(self, embeddings: Any) -> list[float]:
        """Head outputs for (N, 768) L2-normalized embeddings (numpy or torch)."""
        import torch

        x = torch.as_tensor(embeddings, dtype=torch.float32, device=next(self.head.parameters()).device)
        with torch.no_grad():
            return [float(v) for v in self.head(x).squeeze(-1).cpu()]

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        candidates = list(candidates)
        if not candidates:
            return []
        return self.score_embeddings(self.embed_images(candidates))

    def reward(self, pixels: Any, prompts: Sequence[str] | str | None = None, state: Any = None) -> Any:
        """Differentiable aesthetic score for B×3×H×W pixels in [0, 1] (prompts are ignored)."""
        emb = clip_common.image_features(self.bundle.model, self.bundle.preprocess_tensor(pixels))
        return self.head(emb.float()).squeeze(-1)
