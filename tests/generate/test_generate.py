"""`prefcli generate`: ReNO's noise optimization on a tiny diffusers pipeline and colour scorers.

Facts checked against ExplainableML/ReNO (commit bd6f6ac), cited per test.
"""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("diffusers")

import torch  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import generate_fakes as fakes  # noqa: E402
from json_schemas import validate  # noqa: E402 - docs/schemas/: every command's JSON
from prefcli import plugins  # noqa: E402
from prefcli.cli import app  # noqa: E402
from prefcli.generate import reno  # noqa: E402
from prefcli.generate.pipelines import OneStepFlux, load_generator  # noqa: E402
from prefcli.generate.reno import RewardTerm  # noqa: E402
from prefcli.generate.rewards import PRESETS  # noqa: E402


@pytest.fixture
def colours():
    plugins.register_plugin(fakes.ColourPlugin(), name="colour-scorers")
    fakes.CALLS.clear()
    yield fakes
    plugins.unregister_plugin(name="colour-scorers")


@pytest.fixture(scope="module")
def tiny():
    return load_generator("tiny", device="cpu")


def invoke(*args):
    res = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def test_regularizer_is_renos_formula():
    """ReNO training/trainer.py lines 63 and 109-115: latent_dim = prod(shape[1:]);
    0.01 * (0.5 * ||z||^2 - (latent_dim - 1) * log ||z||), the norm taken in fp32."""
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3)).half()
    d = 4 * 8 * 8
    norm = math.sqrt(sum(float(v) ** 2 for v in z.float().flatten()))
    want = 0.01 * (0.5 * norm**2 - (d - 1) * math.log(norm))
    got = reno.regularizer(z)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(want, rel=1e-5)
    # Its minimum is at ||z|| = sqrt(d - 1), where Gaussian noise of size d lives.
    norms = [
        reno.regularizer(torch.full((1, d), r / math.sqrt(d))).item()
        for r in (math.sqrt(d - 1) * f for f in (0.8, 1.0, 1.2))
    ]
    assert norms[1] < norms[0] and norms[1] < norms[2]


def _scripted(values):
    """A reward returning `values[i]` on the i-th call, differentiable (zero gradient) in the pixels."""
    it = iter(values)

    def fn(pixels):
        return pixels.sum() * 0 + next(it)

    return fn


def test_best_image_is_lowest_reward_loss_regularizer_excluded():
    """ReNO trainer.py lines 104-108 and 121-125: the best image has the lowest *reward* loss
    (computed before the regularizer is added, line 108), strictly lower (earliest of equals);
    line 86-94: the unguided image is the first iteration's; line 126: no step after the last."""
    seen = []

    def forward(z):
        seen.append(z.detach().clone())
        return torch.sigmoid(z).reshape(1, 1, 2, 2).expand(1, 3, 2, 2)

    values = [0.1, 0.5, 0.5, 0.2, 0.4]  # reward loss = 1 - r: best (lowest) at iteration 1, tie at 2
    term = RewardTerm("r", 1.0, 1.0, _scripted(values))
    # A huge regularizer weight makes the total loss disagree with the reward loss about the best.
    res = reno.optimize(forward, torch.ones(1, 4) * 3, [term], steps=5, reg_weight=100.0)
    assert len(seen) == 5  # one image per iteration
    assert res.best_iteration == 1
    assert [round(i.reward_loss, 6) for i in res.iterations] == [0.9, 0.5, 0.5, 0.8, 0.6]
    assert min(range(5), key=lambda i: res.iterations[i].loss) != 1  # the total loss would pick another
    assert torch.equal(res.initial, forward(seen[0]).float())
    assert torch.equal(res.best, forward(seen[1]).float())
    assert res.iterations[-1].grad_norm is None and all(i.grad_norm is not None for i in res.iterations[:-1])


def test_optimizer_is_renos_sgd_with_clip():
    """ReNO training/optim.py line 10: SGD(lr, momentum=0.9, nesterov); arguments.py lines 23, 34-36:
    lr 5, Nesterov on, grad_clip 0.1; trainer.py line 128: clip_grad_norm_(latents, 0.1) before the step."""
    z0 = torch.tensor([[3.0, -4.0]])
    target = torch.tensor([[1.0, 1.0]])

    def forward(z):
        return z.reshape(1, 1, 1, 2).expand(1, 3, 1, 2)

    # reward = -(||z - target||^2) / 3 per channel mean -> gradient of the loss = 2 (z - target)
    term = RewardTerm("q", 1.0, 0.0, lambda px: -((px[:, 0, 0] - target) ** 2).sum(-1))
    res = reno.optimize(forward, z0, [term], steps=3, reg_weight=0.0)
    # By hand: g0 = 2 (z0 - t), clipped to norm 0.1; Nesterov first step: buf = g, update = g + 0.9 buf.
    g = 2 * (z0 - target)
    g = g * min(1.0, 0.1 / (float(g.norm()) + 1e-6))
    z1 = z0 - 5.0 * (g + 0.9 * g)
    g1 = 2 * (z1 - target)
    g1 = g1 * min(1.0, 0.1 / (float(g1.norm()) + 1e-6))
    buf = 0.9 * g + g1
    z2 = z1 - 5.0 * (g1 + 0.9 * buf)
    assert res.iterations[0].grad_norm == pytest.approx(float((2 * (z0 - target)).norm()), rel=1e-5)
    assert res.best_latent is not None
    got = [-(v.rewards["q"]) for v in res.iterations]
    want = [float(((z - target) ** 2).sum()) for z in (z0, z1, z2)]
    assert got == pytest.approx(want, rel=1e-5)


def test_presets_are_renos_and_the_papers():
    """ReNO arguments.py: n_iters 50 (line 24), hps_weighting 5.0 (45), imagereward 1.0 (57),
    clip 0.01 (63), pickscore 0.05 (75); rewards/hps.py line 27 loads HPS_v2.1. The paper: 0.75, 30."""
    assert dict(PRESETS["reno"].rewards) == {"hpsv2": 5.0, "imagereward": 1.0, "clip": 0.01, "pickscore": 0.05}
    assert PRESETS["reno"].steps == 50
    assert dict(PRESETS["paper"].rewards) == {"preftoken": 0.75} and PRESETS["paper"].steps == 30


def test_known_optimum_reward_rises_and_final_beats_unguided(colours, tiny, tmp_path):
    """A reward whose optimum is known (pure red): the reward rises over the iterations and the
    saved final image is redder than the same seed's unguided image."""
    from prefcli.generate.run import GenerateConfig, generate
    from prefcli.images import load_image

    rec = generate(
        GenerateConfig("a red fox", model="tiny", rewards=[("red", 100.0)], steps=20, out=str(tmp_path)), generator=tiny
    )[0]
    reds = [it["rewards"]["red"] for it in rec["iterations"]]
    assert sum(reds[-5:]) / 5 > sum(reds[:5]) / 5 + 0.05
    assert rec["final"]["rewards"]["red"] > rec["unguided"]["rewards"]["red"] + 0.1
    final = fakes.redness(fakes._pixels([load_image(tmp_path / rec["files"]["image"])]))
    unguided = fakes.redness(fakes._pixels([load_image(tmp_path / rec["files"]["unguided"])]))
    assert float(final) > float(unguided) + 0.1
    assert float(final) == pytest.approx(rec["final"]["rewards"]["red"], abs=0.01)  # the PNG is the best image


def test_gradients_reach_the_latent_and_nothing_else(tiny):
    """main.py lines 111-113: the latent is the only parameter; models/RewardStableDiffusion.py
    lines 53-56 and rewards/base_reward.py lines 16-18: generator and reward models frozen."""
    from prefcli.generate.rewards import load_scorers, reward_terms, scorer_parameters

    loaded = load_scorers(
        ["clip"], weights={"*": "tiny"}, options={}, device="cpu", history=None, need_differentiable=True, role="reward"
    )
    loaded[0].weight = 1.0
    (term,) = reward_terms(loaded, "a fox")
    z = torch.nn.Parameter(tiny.init_latent(0))
    loss = term.weight * (term.offset - term.fn(tiny.forward(z, tiny.encode("a fox"))).mean()) + reno.regularizer(z)
    loss.backward()
    assert z.grad is not None and float(z.grad.norm()) > 0
    frozen = [p for m in tiny.modules for p in m.parameters()] + scorer_parameters(loaded)
    assert len(frozen) > 50
    assert all(p.grad is None and not p.requires_grad for p in frozen)


def _colour_folders(root):
    """Two liked (reddish) and two disliked (bluish) 16 px pictures, never black."""
    from PIL import Image

    for sub, colours in (("liked", [(200, 40, 30), (180, 60, 50)]), ("disliked", [(30, 40, 200), (50, 60, 170)])):
        (root / sub).mkdir(parents=True)
        for k, c in enumerate(colours):
            Image.new("RGB", (16, 16), c).save(root / sub / f"{k}.png")
    return root / "liked", root / "disliked"


def test_history_is_conditioned_once(colours, tiny, tmp_path):
    """A personalized reward reads --likes/--dislikes once; each iteration reuses the state."""
    from prefcli.generate.run import GenerateConfig, generate

    liked, disliked = _colour_folders(tmp_path / "hist")
    cfg = GenerateConfig(
        "a fox",
        model="tiny",
        rewards=[("taste", 10.0)],
        steps=6,
        n=2,
        out=str(tmp_path / "out"),
        likes=str(liked),
        dislikes=str(disliked),
    )
    recs = generate(cfg, generator=tiny)
    assert fakes.CALLS["taste.condition"] == 1 and fakes.CALLS["taste.reward"] == 12
    assert len(recs[0]["history"]) == 2
    assert recs[0]["final"]["rewards"]["taste"] > recs[0]["unguided"]["rewards"]["taste"]


def test_cli_writes_image_sidecar_strip_and_resumes(colours, tmp_path):
    out = tmp_path / "out"
    # The same command twice: the second run resumes and keeps what the first one wrote.
    cmd = ("generate", "a red fox", "--model", "tiny", "--reward", "red=50", "--judge", "green",
           "--steps", "7", "--save-every", "3", "--seed", "5", "--out", out)  # fmt: skip
    res = invoke(
        *cmd,
        "--format",
        "json",
    )
    (rec,) = validate(json.loads(res.stdout))["results"]["images"]
    stem = "a-red-fox-seed5"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}{s}" for s in (".json", ".png", ".unguided.png", ".strip.png")
    )
    side = json.loads((out / f"{stem}.json").read_text())
    assert side["prompt"] == "a red fox" and side["seed"] == 5 and side["done"]
    assert side["generator"] == {"name": "tiny", "weights": "tiny", "revision": None, "kind": "sd", "dtype": "float32"}
    assert side["rewards"] == [{"name": "red", "weights": "none", "options": {}, "weight": 50.0, "offset": 0.0}]
    assert side["optimizer"] == {
        "steps": 7,
        "lr": 5.0,
        "momentum": 0.9,
        "nesterov": True,
        "grad_clip": 0.1,
        "reg_weight": 0.01,
        "optimizer": "sgd",
        "preset": "reno",
    }
    assert [it["iteration"] for it in side["iterations"]] == list(range(7))
    assert set(side["iterations"][0]) >= {"rewards", "reward_loss", "regularizer", "loss", "grad_norm"}
    assert set(side["judge_scores"]["green"]) == {"unguided", "final"} and rec["judge_scores"] == side["judge_scores"]
    from PIL import Image

    strip = Image.open(out / f"{stem}.strip.png")
    assert strip.width > 4 * strip.height / 2  # iterations 0, 3, 6 and the best, side by side
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    res = invoke(
        *cmd,
    )
    assert "already made" in res.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_other_settings_never_overwrite_a_result(colours, tmp_path, capsys):
    args = ["generate", "a red fox", "--model", "tiny", "--steps", "2", "--out", tmp_path]
    assert run_main(capsys, *args, "--reward", "red=50")[0] == 0
    before = (tmp_path / "a-red-fox-seed0.png").read_bytes()
    code, err = run_main(capsys, *args, "--reward", "red=5")
    assert code == 2 and "other settings" in err
    assert (tmp_path / "a-red-fox-seed0.png").read_bytes() == before


def run_main(capsys, *args) -> tuple[int, str]:
    """`prefcli ARGS` through the console entry point: (exit code, stderr)."""
    from prefcli.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr().err


def test_cli_errors_are_one_line(colours, tmp_path, capsys):
    for args, needle in [
        (["--reward", "green=1"], "not differentiable"),
        (["--reward", "red=1", "--judge", "red"], "held out"),
        (["--reward", "taste=1"], "--likes DIR and --dislikes DIR"),
        (["--reward", "red=x"], "not a number"),
        (["--reward", "red=1", "-o", "blue.k", "1"], "'blue' is not one of the rewards and judges here"),
        (["--reward", "red=1", "--model", str(tmp_path)], "model_index.json"),
    ]:
        code, err = run_main(capsys, "generate", "p", "--model", "tiny", "--out", tmp_path / "o", *args)
        assert code == 2, (args, err)
        assert needle in err and len(err.strip().splitlines()) == 1, err


def test_help_lists_generate():
    assert "generate" in invoke("--help").stdout


def test_one_step_sd_equals_the_diffusers_pipeline(tiny):
    """The differentiable step is the pipeline's own one-step sample for the same latent
    (StableDiffusionPipeline.__call__ with latents=z, 1 step, guidance 0: prepare_latents scales z by
    init_noise_sigma, as ReNO's RewardStableDiffusion.apply does, lines 164-175)."""
    z = tiny.init_latent(7)
    with torch.no_grad():
        ours = tiny.forward(z, tiny.encode("a red fox"))
        ref = tiny.pipe(
            "a red fox", num_inference_steps=1, guidance_scale=0.0, latents=z.clone(), output_type="pt"
        ).images
    assert ours.shape == ref.shape == (1, 3, tiny.image_size, tiny.image_size)
    assert torch.allclose(ours, ref.float(), atol=1e-5)


def test_one_step_flux_equals_the_diffusers_pipeline():
    """FLUX-schnell: z is the packed latent (ReNO main.py line 78: (1, 16*64, 64) at 512 px), one
    flow-matching step at sigma 1, unpacked and decoded; equal to FluxPipeline's own 1-step sample."""
    pytest.importorskip("mistral_common")
    gen = fakes.tiny_flux(32)
    assert gen.latent_shape == (1, (32 // 4) ** 2, 16)
    z = gen.init_latent(3)
    with torch.no_grad():
        ours = gen.forward(z, gen.encode("a red fox"))
        ref = gen.pipe(
            "a red fox",
            num_inference_steps=1,
            guidance_scale=0.0,
            height=32,
            width=32,
            latents=z.clone(),
            max_sequence_length=256,
            output_type="pt",
        ).images
    assert torch.allclose(ours, ref.float(), atol=1e-5)
    zp = torch.nn.Parameter(z.clone())
    gen.forward(zp, gen.encode("a red fox"))[:, 0].mean().backward()
    assert zp.grad is not None and float(zp.grad.norm()) > 0
    # At 512 px with FLUX.1-schnell's transformer (in_channels 64) and VAE (scale 8), without loading them:
    from types import SimpleNamespace

    full = OneStepFlux.__new__(OneStepFlux)
    full.pipe = SimpleNamespace(transformer=SimpleNamespace(config=SimpleNamespace(in_channels=64)), vae_scale_factor=8)
    assert full.latent_shape == (1, 16 * 64, 64)


def test_one_step_sdxl_equals_the_diffusers_pipeline():
    """SDXL-Turbo: pooled text embeddings and size/crop time ids as added conditions, Euler ancestral with
    trailing spacing (ReNO models/utils.py lines 55-57); equal to the pipeline's own 1-step sample."""
    gen = fakes.tiny_sdxl()
    assert (
        type(gen.pipe.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
        and gen.pipe.scheduler.config.timestep_spacing == "trailing"
    )
    z = gen.init_latent(2)
    with torch.no_grad():
        ours = gen.forward(z, gen.encode("a red fox"))
        ref = gen.pipe(
            "a red fox",
            num_inference_steps=1,
            guidance_scale=0.0,
            latents=z.clone(),
            output_type="pt",
            generator=torch.Generator("cpu").manual_seed(0),
        ).images
    assert ours.shape == (1, 3, gen.image_size, gen.image_size)
    assert torch.allclose(ours, ref.float(), atol=1e-5)
