"""One-step generators as differentiable maps: initial latent z -> image in [0, 1].

ReNO (github.com/ExplainableML/ReNO) optimizes the *initial noise* of a
one-step text-to-image model. A `OneStep` wraps a diffusers pipeline's frozen
components and does exactly one denoising step with gradients to z:

- Stable Diffusion (sd-turbo) and SDXL (sdxl-turbo): x_T = z · init_noise_sigma
  (what `prepare_latents` does with given latents), one scheduler step of the
  UNet's prediction, VAE decode of x_0 / scaling_factor, then
  (x / 2 + 0.5).clamp(0, 1) — ReNO's models/RewardStableDiffusion.py
  (`decode_latents_tensors`, lines 58-62, and `apply`).
- FLUX.1-schnell: z is the packed latent (1, 1024, 64) at 512x512 (ReNO's
  main.py line 78), one flow-matching step at sigma 1, unpack, VAE decode of
  latents / scaling_factor + shift_factor.

The prompt is encoded once (`encode`) with no gradients: the text encoders are
frozen and the prompt does not change, so recomputing it every iteration (as
ReNO's `apply` does) changes nothing but the time. The latent stays fp32; it
is cast to the weights' dtype (fp16/bf16 on a GPU) inside `forward`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefcli import devices
from prefcli.errors import ConfigError, WeightsError

#: Short names for the generators ReNO supports and the paper uses.
GENERATORS: dict[str, str] = {
    "sd-turbo": "stabilityai/sd-turbo",
    "sdxl-turbo": "stabilityai/sdxl-turbo",
    "flux-schnell": "black-forest-labs/FLUX.1-schnell",
}

#: Files a diffusers-format snapshot needs (not the single-file checkpoints beside them).
SNAPSHOT_PATTERNS = ["model_index.json", "*/*.json", "*/*.txt", "*/*.model", "*/*.safetensors"]

#: Parameters of the frozen parts (diffusers configs of the hub repositories), for --dry-run.
KNOWN_PARAMS: dict[str, dict[str, float]] = {
    "sd-turbo": {"unet": 865.9e6, "vae": 83.7e6, "text_encoder": 340.4e6},
    "sdxl-turbo": {"unet": 2567.5e6, "vae": 83.7e6, "text_encoder": 123.1e6, "text_encoder_2": 694.7e6},
    "flux-schnell": {"transformer": 11901.4e6, "vae": 83.8e6, "text_encoder": 123.1e6, "text_encoder_2": 4762.3e6},
}


def _import_diffusers() -> Any:
    try:
        import diffusers
    except ImportError as e:
        raise ConfigError(f"prefcli generate needs diffusers: pip install 'prefcli[generate]' ({e})") from None
    from prefcli import messages

    messages.watch()  # diffusers' and transformers' own log handlers: CLIP's per-prompt truncation note, once per run
    return diffusers


def folder_revision(path: Path) -> str:
    """The hub commit of a snapshot folder, else sha256 (12 hex) of the folder's small files and big files' sizes."""
    if path.parent.name == "snapshots":
        return path.name
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        size = f.stat().st_size
        h.update(f"{f.relative_to(path).as_posix()}\0{size}\0".encode())
        if size <= 1 << 20:
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


@dataclass
class GeneratorId:
    """What produced an image: the name asked for, the weights it resolved to, their revision."""

    name: str
    weights: str
    revision: str | None
    kind: str
    dtype: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weights": self.weights,
            "revision": self.revision,
            "kind": self.kind,
            "dtype": self.dtype,
        }


class OneStep:
    """A frozen one-step generator: `encode(prompt)` once, then `forward(z, cond)` with gradients to z."""

    kind = "?"
    default_sample_steps = 1

    def __init__(self, pipe: Any, ident: GeneratorId, device: str, checkpointing: bool = False):
        self.pipe = pipe
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)  # prefcli shows its own progress
        self.ident = ident
        self.device = device
        for name in ("unet", "transformer", "vae", "text_encoder", "text_encoder_2"):
            module = getattr(pipe, name, None)
            if module is not None:
                module.requires_grad_(False)
                module.eval()
        core = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        if checkpointing and core is not None and hasattr(core, "enable_gradient_checkpointing"):
            core.enable_gradient_checkpointing()  # ReNO RewardStableDiffusion.py line 48
        self.dtype = core.dtype

    @property
    def modules(self) -> list[Any]:
        return [
            m
            for m in (
                getattr(self.pipe, n, None) for n in ("unet", "transformer", "vae", "text_encoder", "text_encoder_2")
            )
            if m is not None
        ]

    @property
    def latent_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def image_size(self) -> int:
        raise NotImplementedError

    def init_latent(self, seed: int) -> Any:
        """z ~ N(0, I) in fp32 from a CPU generator, so a seed gives the same noise on every device."""
        import torch

        g = torch.Generator("cpu").manual_seed(int(seed))
        return torch.randn(self.latent_shape, generator=g, dtype=torch.float32).to(self.device)

    def encode(self, prompt: str) -> Any:
        raise NotImplementedError

    def forward(self, z: Any, cond: Any) -> Any:
        raise NotImplementedError

    def sample(self, prompt: str, seed: int, steps: int | None = None) -> Any:
        """A plain (unguided) PIL image from the pipeline's own sampler, as its model card runs it."""
        import torch

        g = torch.Generator("cpu").manual_seed(int(seed))
        kw: dict[str, Any] = dict(
            num_inference_steps=steps or self.default_sample_steps, guidance_scale=0.0, generator=g
        )
        if self.kind == "flux":
            kw.update(height=self.image_size, width=self.image_size, max_sequence_length=256)
        with torch.no_grad():
            return self.pipe(prompt, **kw).images[0]


class OneStepSD(OneStep):
    kind = "sd"

    @property
    def latent_shape(self) -> tuple[int, ...]:
        unet = self.pipe.unet
        return (1, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)

    @property
    def image_size(self) -> int:
        return self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor

    def encode(self, prompt: str) -> Any:
        import torch

        with torch.no_grad():
            embeds, _ = self.pipe.encode_prompt(prompt, self.device, 1, False)
        return {"encoder_hidden_states": embeds}

    def _unet_kwargs(self, cond: Any) -> dict[str, Any]:
        return {"encoder_hidden_states": cond["encoder_hidden_states"]}

    def forward(self, z: Any, cond: Any) -> Any:
        import torch

        sched = self.pipe.scheduler
        sched.set_timesteps(1, device=self.device)  # resets the step index: one step per call
        t = sched.timesteps[0]
        x = z.to(self.dtype) * sched.init_noise_sigma
        pred = self.pipe.unet(sched.scale_model_input(x, t), t, return_dict=False, **self._unet_kwargs(cond))[0]
        # An ancestral step adds no noise when it steps to sigma 0; the generator only keeps it reproducible.
        x0 = sched.step(pred, t, x, generator=torch.Generator("cpu").manual_seed(0), return_dict=False)[0]
        vae = self.pipe.vae
        image = vae.decode((x0 / vae.config.scaling_factor).to(vae.dtype), return_dict=False)[0]
        return (image.float() / 2 + 0.5).clamp(0, 1)


class OneStepSDXL(OneStepSD):
    kind = "sdxl"

    def encode(self, prompt: str) -> Any:
        import torch

        pipe = self.pipe
        with torch.no_grad():
            embeds, _, pooled, _ = pipe.encode_prompt(
                prompt, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=False
            )
        size = (self.image_size, self.image_size)
        proj = pipe.text_encoder_2.config.projection_dim if pipe.text_encoder_2 is not None else int(pooled.shape[-1])
        time_ids = pipe._get_add_time_ids(size, (0, 0), size, dtype=embeds.dtype, text_encoder_projection_dim=proj)
        return {"encoder_hidden_states": embeds, "text_embeds": pooled, "time_ids": time_ids.to(self.device)}

    def _unet_kwargs(self, cond: Any) -> dict[str, Any]:
        return {"encoder_hidden_states": cond["encoder_hidden_states"],
                "added_cond_kwargs": {"text_embeds": cond["text_embeds"], "time_ids": cond["time_ids"]}}  # fmt: skip


class OneStepFlux(OneStep):
    kind = "flux"
    default_sample_steps = 4  # FLUX.1-schnell's model card

    size = 512  # ReNO supports FLUX at 512x512 only (main.py lines 76-78); tests set a smaller one

    @property
    def _grid(self) -> int:
        return 2 * (self.size // (self.pipe.vae_scale_factor * 2))

    @property
    def latent_shape(self) -> tuple[int, ...]:
        c = self.pipe.transformer.config.in_channels // 4
        return (1, (self._grid // 2) ** 2, c * 4)

    @property
    def image_size(self) -> int:
        return self.size

    def encode(self, prompt: str) -> Any:
        import torch

        with torch.no_grad():
            embeds, pooled, text_ids = self.pipe.encode_prompt(
                prompt, prompt_2=None, device=self.device, max_sequence_length=256
            )
        img_ids = self.pipe._prepare_latent_image_ids(1, self._grid // 2, self._grid // 2, self.device, embeds.dtype)
        return {"embeds": embeds, "pooled": pooled, "text_ids": text_ids, "img_ids": img_ids}

    def forward(self, z: Any, cond: Any) -> Any:
        import numpy as np
        import torch

        pipe = self.pipe
        sched = pipe.scheduler
        sched.set_timesteps(
            sigmas=np.array([1.0]),
            device=self.device,
            **({"mu": 0.0} if sched.config.get("use_dynamic_shifting") else {}),
        )
        t = sched.timesteps[0]
        x = z.to(self.dtype)
        guidance = None
        if pipe.transformer.config.get("guidance_embeds"):
            guidance = torch.zeros(x.shape[0], device=self.device, dtype=torch.float32)
        pred = pipe.transformer(
            hidden_states=x, timestep=t.expand(x.shape[0]).to(x.dtype) / 1000, guidance=guidance,
            pooled_projections=cond["pooled"], encoder_hidden_states=cond["embeds"],
            txt_ids=cond["text_ids"], img_ids=cond["img_ids"], return_dict=False,
        )[0]  # fmt: skip
        x0 = sched.step(pred, t, x, return_dict=False)[0]
        lat = pipe._unpack_latents(x0, self.size, self.size, pipe.vae_scale_factor)
        vae = pipe.vae
        lat = lat / vae.config.scaling_factor + vae.config.shift_factor
        image = vae.decode(lat.to(vae.dtype), return_dict=False)[0]
        return (image.float() / 2 + 0.5).clamp(0, 1)


def _wrap(pipe: Any, ident: GeneratorId, device: str, checkpointing: bool) -> OneStep:
    name = type(pipe).__name__
    if name.startswith("StableDiffusionXL"):
        # sdxl-turbo steps with Euler ancestral, trailing spacing (ReNO models/utils.py lines 55-57).
        from diffusers import EulerAncestralDiscreteScheduler

        pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
        cls: type[OneStep] = OneStepSDXL
    elif name.startswith("StableDiffusion"):
        cls = OneStepSD
    elif name.startswith("Flux"):
        cls = OneStepFlux
    else:
        raise ConfigError(
            f"--model {ident.name}: a {name} is not a one-step generator prefcli supports (Stable Diffusion, SDXL or FLUX pipelines)"
        )
    ident.kind = cls.kind
    return cls(pipe, ident, device, checkpointing)


_TINY: dict[tuple[int, str], Any] = {}


def load_generator(
    model: str, *, device: str = "cpu", dtype: str | None = None, offline: bool | None = None
) -> OneStep:
    """sd-turbo, sdxl-turbo, flux-schnell, a hub id, a local diffusers folder, or tiny[:SEED]."""
    from prefcli import weights

    if weights.is_tiny(model):
        from prefcli.generate.tiny import build_tiny_sd

        _import_diffusers()
        key = (weights.tiny_seed(model), str(device))
        if key not in _TINY:  # frozen and deterministic, so one build serves a whole process (tests, bench)
            _TINY[key] = build_tiny_sd(key[0]).to(device)
        pipe = _TINY[key]
        ident = GeneratorId(model, model, None, "sd", "float32")
        return _wrap(pipe, ident, device, checkpointing=False)
    diffusers = _import_diffusers()
    spec = GENERATORS.get(model, model)
    folder_spec = spec if (spec.startswith("hf-hub:") or Path(spec).expanduser().exists()) else f"hf-hub:{spec}"
    try:
        folder = weights.resolve_dir(folder_spec, allow_patterns=SNAPSHOT_PATTERNS, offline=offline)
    except WeightsError as e:
        raise WeightsError(f"--model {model}: " + str(e).replace("--weights PATH", "--model PATH")) from None
    if not (folder / "model_index.json").is_file():
        raise WeightsError(f"{folder}: not a diffusers pipeline folder (no model_index.json)")
    from prefcli.generate.folder_check import check_pipeline_folder

    check_pipeline_folder(folder)
    # FLUX is released and run in bf16 (ReNO models/utils.py line 117); the other generators in fp16.
    tdtype = devices.torch_dtype(dtype, device, "bfloat16" if "flux" in spec.lower() else None)
    try:
        pipe = diffusers.DiffusionPipeline.from_pretrained(str(folder), torch_dtype=tdtype)
    except (OSError, ValueError) as e:
        raise WeightsError(f"{folder}: cannot load the pipeline: {str(e).splitlines()[0]}") from None
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError, MemoryError, RecursionError) as e:
        # A crafted tokenizer or config file fails inside diffusers/transformers in many ways (a KeyError for a
        # garbage tokenizer.json): one line naming the folder, not a traceback.
        first = (str(e).splitlines() or [""])[0][:160]
        raise WeightsError(f"{folder}: cannot load the pipeline ({type(e).__name__}: {first})") from None
    pipe = pipe.to(device)
    ident = GeneratorId(model, spec, folder_revision(folder), "?", str(tdtype).replace("torch.", ""))
    return _wrap(pipe, ident, device, checkpointing=str(device).startswith("cuda"))


def count_params(gen: OneStep) -> int:
    return sum(p.numel() for m in gen.modules for p in m.parameters())


__all__ = ["GENERATORS", "OneStep", "load_generator", "folder_revision", "count_params"]
