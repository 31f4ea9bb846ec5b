"""`prefcli generate --dry-run`: what would load, how many parameters, and the GPU memory it needs.

Nothing heavy loads for the named generators and the rewards' default weights:
their parameter counts are those of the published configs. Other weights (a
local folder, tiny) are loaded on the CPU and counted. The estimate is the
frozen weights at their dtype plus the activations of one differentiable
iteration, which ReNO measured (SD-Turbo with its four rewards: about 15 GB on
an A100, of which about 9.5 GB are fp16 weights) and which we scale with the
weights; it is an estimate, and says so.
"""

from __future__ import annotations

from typing import Any

from prefcli.errors import ConfigError

#: Parameters of each scorer's default weights (their published configs).
DEFAULT_REWARD_PARAMS: dict[str, float] = {
    "preftoken": 8.40e9, "viper": 8.40e9, "idefics": 8.40e9,  # IDEFICS2-8B
    "hpsv2": 986.1e6, "pickscore": 986.1e6,  # OpenCLIP ViT-H/14
    "clip": 427.6e6, "aesthetic": 428.5e6,  # OpenAI CLIP ViT-L/14 (+ the MLP head)
    "imagereward": 447.0e6,  # BLIP ViT-L/16 + BERT-base with cross-attention
    "hpsv3": 7.75e9,  # Qwen2-VL-7B-Instruct (8.29e9) less its lm_head (3584 × 152064), which hpsv3 does not load
}  # fmt: skip

#: ReNO's measurement: activations of one iteration ≈ this fraction of the fp16 weights (15 GB total, 9.5 GB weights).
ACTIVATION_FRACTION = (15.0 - 9.5) / 9.5


def _bytes_per(dtype: str) -> float:
    return {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0, "nf4": 0.5}.get(dtype, 4.0)


def dry_run(cfg: Any) -> list[dict[str, Any]]:
    from prefcli import weights as wt
    from prefcli.devices import torch_dtype
    from prefcli.generate.pipelines import KNOWN_PARAMS, count_params, load_generator
    from prefcli.plugins import get_scorer_spec

    gpu = str(cfg.device).startswith("cuda")
    # The dtypes load_generator would pick (prefcli.devices' rule; FLUX prefers bf16 on CUDA).
    dt = str(torch_dtype(cfg.dtype, cfg.device)).replace("torch.", "")
    rows: list[dict[str, Any]] = []
    if cfg.model in KNOWN_PARAMS:
        gdt = str(torch_dtype(cfg.dtype, cfg.device, "bfloat16" if cfg.model == "flux-schnell" else None)).replace(
            "torch.", ""
        )
        for part, n in KNOWN_PARAMS[cfg.model].items():
            rows.append(
                {
                    "part": "generator",
                    "name": f"{cfg.model}/{part}",
                    "parameters": int(n),
                    "dtype": gdt,
                    "note": "published config",
                }
            )
    else:
        gen = load_generator(cfg.model, device="cpu", dtype="float32")
        rows.append(
            {
                "part": "generator",
                "name": cfg.model,
                "parameters": count_params(gen),
                "dtype": dt,
                "note": "loaded and counted",
            }
        )
    for name, w in cfg.rewards + [(j, None) for j in cfg.judges]:
        spec = get_scorer_spec(name)
        if w is not None and not spec.differentiable:
            raise ConfigError(f"--reward {name}: this scorer is not differentiable, so it cannot steer generation")
        spec_w = cfg.weights.get(name, cfg.weights.get("*"))
        role = "reward" if w is not None else "judge"
        label = f"{name}" + (f" ×{w:g}" if w is not None else "")
        rdt = dt
        if spec_w is None or spec_w == spec.default_weights:
            n = DEFAULT_REWARD_PARAMS.get(name)
            rows.append({"part": role, "name": label, "parameters": int(n) if n else None, "dtype": rdt,
                         "note": "published config" if n else "unknown until loaded"})  # fmt: skip
        elif wt.is_tiny(spec_w):
            rows.append(
                {
                    "part": role,
                    "name": label,
                    "parameters": None,
                    "dtype": rdt,
                    "note": "tiny random weights (negligible)",
                }
            )
        else:
            rows.append(
                {
                    "part": role,
                    "name": label,
                    "parameters": None,
                    "dtype": rdt,
                    "note": f"weights {spec_w}: counted when loaded",
                }
            )
    total = 0.0
    for r in rows:
        r["memory_gb"] = round(r["parameters"] * _bytes_per(r["dtype"]) / 1e9, 2) if r["parameters"] else None
        total += r["memory_gb"] or 0.0
    act = total * ACTIVATION_FRACTION
    rows.append({"part": "activations", "name": f"{cfg.steps} iterations, one image", "parameters": None, "dtype": "", "memory_gb": round(act, 2),
                 "note": "estimate scaled from ReNO's SD-Turbo measurement"})  # fmt: skip
    est = total + act
    note = ""
    if gpu:
        import torch

        cap = torch.cuda.get_device_properties(0).total_memory / 1e9
        note = f"device has {cap:.1f} GB"
        if est > cap:
            raise ConfigError(
                f"the estimated {est:.1f} GB exceeds the {cap:.1f} GB of {cfg.device}; use a smaller generator or fewer rewards"
            )
    rows.append({"part": "total", "name": "estimated GPU memory", "parameters": sum(r["parameters"] or 0 for r in rows), "dtype": "",
                 "memory_gb": round(est, 2), "note": note})  # fmt: skip
    return rows
