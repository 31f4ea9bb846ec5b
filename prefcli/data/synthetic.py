"""The synthetic taste world: rendered images, simulated people, noisy labels.

A *world* (fixed by `world_seed`) is a set of prompts, a pool of images per
prompt rendered from visual attributes, and a few taste groups, each a weight
vector over the images' feature vector phi(image). *Users* (drawn with a
separate `user_seed`, so new people from the same population can be drawn
later) belong to one group and add individual variation to its weights. Each
user judges pairs of images of one prompt; the label is sampled from
P(A over B) = sigmoid((u(A) - u(B)) / temperature), u = w_user . phi.

The output is Pick-a-Pic v2-schema parquet, so the same builder that reads
the real dataset turns the world into a dataset, plus the ground truth
(`world.json`, `users.parquet`, `images.parquet`) for reference accuracies.

Everything is a pure function of the config: no clock, no global RNG. Images
are rendered on demand and kept in a bounded cache, so memory stays flat for
hundreds of thousands of pairs.
"""

from __future__ import annotations

import colorsys
import dataclasses
import datetime as _dt
import io
import json
import math
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prefcli.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

WORLD_FORMAT_VERSION = 1
MODEL_NAME = "synthetic-v1"

CONTENTS = (
    "circle",
    "square",
    "triangle",
    "star",
    "house",
    "tree",
    "fish",
    "heart",
    "moon",
    "flower",
    "diamond",
    "cloud",
)
PROMPT_TEMPLATES = (
    "a {c}",
    "a simple drawing of a {c}",
    "an icon of a {c}",
    "a {c} on a plain background",
    "a picture of a single {c}",
    "a flat illustration of a {c}",
)
PATTERNS = ("none", "stripes", "dots", "checker", "grid")
MAX_DETAIL = 12

# Attribute ranges. Brightness never goes below 0.4, so no image is dark,
# let alone all black (Idefics2 treats all-zero pixels as padding).
SAT_RANGE = (0.25, 1.0)
BRIGHT_RANGE = (0.4, 1.0)
SCALE_RANGE = (0.4, 0.85)
OFFSET_RANGE = (0.10, 0.22)

FEATURE_NAMES = (
    "hue_cos",
    "hue_sin",
    "saturation",
    "brightness",
    "scale",
    "off_center",
    "detail",
    *(f"pattern_{p}" for p in PATTERNS),
)
GRADED_FEATURES = FEATURE_NAMES[:7]

PRESETS = ("default", "opposed", "consensus")

# Seed-sequence domain tags: each random stream has its own, so adding a
# knob to one stream never shifts another.
_T_PROMPTS, _T_IMAGE, _T_GROUPS, _T_ASSIGN, _T_USER_W, _T_PAIRS, _T_FOLDER = range(1, 8)


def keyed_rng(*keys: int) -> np.random.Generator:
    """A generator keyed by integers: each stream is the same whatever else was drawn before it."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys])))


# ---------------------------------------------------------------- config


# Upper bounds a world is checked against before numpy allocates it (10^12 users ended in a MemoryError).
WORLD_SIZE_MAX = {"n_users": 1_000_000, "n_groups": 1000, "pairs_per_user": 100_000, "images_per_prompt": 100_000,
                  "rows_per_shard": 10_000_000, "cache_images": 1_000_000}  # fmt: skip


@dataclass
class WorldConfig:
    """Every knob of a synthetic world. Build with `WorldConfig.from_preset`."""

    preset: str = "default"
    n_users: int = 40
    n_groups: int = 4
    group_weights: tuple[float, ...] | None = None  # share of users per group; None = equal
    pairs_per_user: int = 40
    temperature: float = 0.5  # label noise: larger = noisier labels
    taste_strength: float = 3.0  # norm of each group's weight vector
    shared_taste: float = 0.5  # default/consensus presets: share of the taste all groups have in common
    sigma_individual: float = 0.3  # a user's deviation from the group, relative to the group's norm
    image_size: int = 64
    n_prompts: int = 16
    images_per_prompt: int = 32
    world_seed: int = 0
    user_seed: int = 0
    rows_per_shard: int = 2000
    cache_images: int = 4096  # rendered PNGs kept in memory (bounded)

    @classmethod
    def from_preset(cls, name: str = "default", **overrides: Any) -> WorldConfig:
        """A preset's knobs with `overrides` on top (None values are ignored)."""
        if name not in PRESETS:
            raise ConfigError(f"unknown synthetic preset {name!r}; choose from {', '.join(PRESETS)}")
        base: dict[str, Any] = {"preset": name}
        if name == "opposed":
            # The setting measured to learn at toy scale (docs/architecture.md, "Toy scale"): two groups
            # with opposed graded tastes (hue, pattern, brightness), 80/20 users.
            base.update(n_groups=2, group_weights=(0.8, 0.2), sigma_individual=0.2)
        elif name == "consensus":
            # `default` where general taste dominates, as on real users (issue 21): a
            # general scorer is hard to beat and personalization alone can lose.
            base.update(shared_taste=0.85)
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown synthetic world knob(s): {', '.join(sorted(unknown))}")
        base.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**base)
        cfg.validate()
        return cfg

    @classmethod
    def from_dict(cls, d: dict) -> WorldConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown synthetic world knob(s): {', '.join(sorted(unknown))}")
        d = dict(d)
        if d.get("group_weights") is not None:
            d["group_weights"] = tuple(float(x) for x in d["group_weights"])
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["group_weights"] = list(self.shares())
        return d

    def shares(self) -> tuple[float, ...]:
        """Normalized share of users per group."""
        gw = self.group_weights or (1.0,) * self.n_groups
        s = float(sum(gw))
        return tuple(float(x) / s for x in gw)

    def validate(self) -> None:
        def bad(msg: str) -> ConfigError:
            return ConfigError(f"synthetic world: {msg}")

        if self.preset not in PRESETS:
            raise bad(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        for name in (
            "n_users",
            "n_groups",
            "pairs_per_user",
            "n_prompts",
            "images_per_prompt",
            "rows_per_shard",
            "cache_images",
        ):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise bad(f"{name} must be a positive integer, got {v!r}")
        if self.image_size < 16 or self.image_size > 1024:
            raise bad(f"image_size must be between 16 and 1024 pixels, got {self.image_size}")
        for name, high in WORLD_SIZE_MAX.items():
            if getattr(self, name) > high:
                raise bad(f"{name} must be at most {high:,}, got {getattr(self, name)!r}")
        for name in (
            "temperature",
            "taste_strength",
            "shared_taste",
            "sigma_individual",
            *(("group_weights",) if self.group_weights else ()),
        ):
            values = getattr(self, name) if name == "group_weights" else (getattr(self, name),)
            if not all(
                isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and np.isfinite(v) and abs(v) <= 1e6
                for v in values
            ):
                raise bad(f"{name} must be a finite number of at most 1e6, got {getattr(self, name)!r}")
        if not self.temperature > 0:
            raise bad(f"temperature (noise) must be > 0, got {self.temperature}")
        if self.taste_strength <= 0:
            raise bad(f"taste_strength must be > 0, got {self.taste_strength}")
        if not 0.0 <= self.shared_taste <= 1.0:
            raise bad(f"shared_taste must be in [0, 1], got {self.shared_taste}")
        if self.sigma_individual < 0:
            raise bad(f"sigma_individual must be >= 0, got {self.sigma_individual}")
        if self.n_prompts > len(CONTENTS) * len(PROMPT_TEMPLATES):
            raise bad(f"n_prompts must be at most {len(CONTENTS) * len(PROMPT_TEMPLATES)}, got {self.n_prompts}")
        if self.group_weights is not None:
            if len(self.group_weights) != self.n_groups:
                raise bad(f"group_weights has {len(self.group_weights)} entries but there are {self.n_groups} groups")
            if any(w < 0 for w in self.group_weights) or sum(self.group_weights) <= 0:
                raise bad("group_weights must be non-negative and not all zero")
        if self.preset == "opposed" and self.n_groups % 2:
            raise bad(f"the opposed preset pairs groups up, so n_groups must be even, got {self.n_groups}")
        if self.images_per_prompt < 2:
            raise bad("images_per_prompt must be at least 2 (a pair shares its prompt)")
        max_pairs = self.n_prompts * (self.images_per_prompt // 2)
        if self.pairs_per_user > max_pairs:
            raise bad(
                f"pairs_per_user={self.pairs_per_user} needs more images than the pool holds "
                f"({self.n_prompts} prompts x {self.images_per_prompt} images allow {max_pairs} pairs without repeats); "
                "raise n_prompts or images_per_prompt"
            )

    @property
    def n_rows(self) -> int:
        return self.n_users * self.pairs_per_user


# ---------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageAttrs:
    """Visual attributes of one image; `render_image` turns them into pixels."""

    content: str
    hue: float  # [0, 1)
    saturation: float
    brightness: float
    pattern: str
    scale: float  # shape size as a fraction of the image side
    offset_x: float  # shape centre offset, fraction of the side (0 = centred)
    offset_y: float
    detail: int  # number of small elements, 0..MAX_DETAIL
    detail_seed: int

    @classmethod
    def from_dict(cls, d: dict) -> ImageAttrs:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


def _norm(x: float, lo: float, hi: float) -> float:
    return 2.0 * (x - lo) / (hi - lo) - 1.0


def features(attrs: ImageAttrs) -> np.ndarray:
    """phi(image): graded attributes in about [-1, 1], the pattern one-hot."""
    a = 2.0 * math.pi * attrs.hue
    off = 1.0 if (attrs.offset_x or attrs.offset_y) else -1.0
    graded = [
        math.cos(a),
        math.sin(a),
        _norm(attrs.saturation, *SAT_RANGE),
        _norm(attrs.brightness, *BRIGHT_RANGE),
        _norm(attrs.scale, *SCALE_RANGE),
        off,
        _norm(attrs.detail, 0, MAX_DETAIL),
    ]
    onehot = [1.0 if attrs.pattern == p else 0.0 for p in PATTERNS]
    return np.asarray(graded + onehot, dtype=np.float64)


def sample_attrs(rng: np.random.Generator, content: str) -> ImageAttrs:
    """Draw one image's style attributes for `content`."""
    hue = float(rng.random())
    sat = float(rng.uniform(*SAT_RANGE))
    bright = float(rng.uniform(*BRIGHT_RANGE))
    pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
    scale = float(rng.uniform(*SCALE_RANGE))
    if rng.random() < 0.5:
        ox = oy = 0.0
    else:
        theta = float(rng.uniform(0, 2 * math.pi))
        m = float(rng.uniform(*OFFSET_RANGE))
        ox, oy = m * math.cos(theta), m * math.sin(theta)
    detail = int(rng.integers(0, MAX_DETAIL + 1))
    return ImageAttrs(
        content,
        round(hue, 6),
        round(sat, 6),
        round(bright, 6),
        pattern,
        round(scale, 6),
        round(ox, 6),
        round(oy, 6),
        detail,
        int(rng.integers(2**31)),
    )


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, max(0.0, min(1.0, s)), max(0.0, min(1.0, v)))
    return (round(r * 255), round(g * 255), round(b * 255))


def _star(cx: float, cy: float, r: float, points: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    pts = []
    for i in range(points * 2):
        rr = r if i % 2 == 0 else r * inner
        a = -math.pi / 2 + i * math.pi / points
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def _draw_content(d, content: str, cx: float, cy: float, r: float, fill, line, bg, lw: int) -> None:
    """Simple recognizable silhouettes inside the circle (cx, cy, r)."""
    box = (cx - r, cy - r, cx + r, cy + r)
    if content == "circle":
        d.ellipse(box, fill=fill, outline=line, width=lw)
    elif content == "square":
        k = r * 0.85
        d.rectangle((cx - k, cy - k, cx + k, cy + k), fill=fill, outline=line, width=lw)
    elif content == "triangle":
        d.polygon(
            [(cx, cy - r), (cx + r * 0.95, cy + r * 0.8), (cx - r * 0.95, cy + r * 0.8)],
            fill=fill,
            outline=line,
            width=lw,
        )
    elif content == "star":
        d.polygon(_star(cx, cy, r), fill=fill, outline=line, width=lw)
    elif content == "diamond":
        d.polygon(
            [(cx, cy - r), (cx + r * 0.7, cy), (cx, cy + r), (cx - r * 0.7, cy)], fill=fill, outline=line, width=lw
        )
    elif content == "house":
        d.rectangle((cx - r * 0.7, cy - r * 0.1, cx + r * 0.7, cy + r * 0.9), fill=fill, outline=line, width=lw)
        d.polygon(
            [(cx - r * 0.9, cy - r * 0.1), (cx, cy - r * 0.9), (cx + r * 0.9, cy - r * 0.1)],
            fill=fill,
            outline=line,
            width=lw,
        )
        d.rectangle((cx - r * 0.15, cy + r * 0.4, cx + r * 0.15, cy + r * 0.9), fill=line)
    elif content == "tree":
        d.rectangle((cx - r * 0.15, cy + r * 0.1, cx + r * 0.15, cy + r), fill=line)
        d.ellipse((cx - r * 0.7, cy - r, cx + r * 0.7, cy + r * 0.4), fill=fill, outline=line, width=lw)
    elif content == "fish":
        d.polygon(
            [(cx + r * 0.3, cy), (cx + r, cy - r * 0.5), (cx + r, cy + r * 0.5)], fill=fill, outline=line, width=lw
        )
        d.ellipse((cx - r, cy - r * 0.5, cx + r * 0.5, cy + r * 0.5), fill=fill, outline=line, width=lw)
        e = max(1.0, r * 0.1)
        d.ellipse((cx - r * 0.6 - e, cy - r * 0.1 - e, cx - r * 0.6 + e, cy - r * 0.1 + e), fill=line)
    elif content == "heart":
        d.ellipse((cx - r, cy - r * 0.8, cx, cy + r * 0.2), fill=fill)
        d.ellipse((cx, cy - r * 0.8, cx + r, cy + r * 0.2), fill=fill)
        d.polygon([(cx - r * 0.95, cy - r * 0.1), (cx + r * 0.95, cy - r * 0.1), (cx, cy + r)], fill=fill)
        d.line([(cx - r * 0.95, cy - r * 0.1), (cx, cy + r), (cx + r * 0.95, cy - r * 0.1)], fill=line, width=lw)
    elif content == "moon":
        d.ellipse(box, fill=fill, outline=line, width=lw)
        d.ellipse((cx - r * 0.45, cy - r * 1.05, cx + r * 1.15, cy + r * 0.55), fill=bg)
    elif content == "flower":
        for i in range(5):
            a = -math.pi / 2 + i * 2 * math.pi / 5
            px, py, pr = cx + r * 0.55 * math.cos(a), cy + r * 0.55 * math.sin(a), r * 0.42
            d.ellipse((px - pr, py - pr, px + pr, py + pr), fill=fill, outline=line, width=lw)
        c = r * 0.3
        d.ellipse((cx - c, cy - c, cx + c, cy + c), fill=line)
    elif content == "cloud":
        for dx, dy, rr in ((-0.5, 0.15, 0.45), (0.0, -0.15, 0.6), (0.5, 0.15, 0.45)):
            x, y, q = cx + dx * r, cy + dy * r, rr * r
            d.ellipse((x - q, y - q, x + q, y + q), fill=fill, outline=line, width=lw)
        d.rectangle((cx - r * 0.5, cy + r * 0.05, cx + r * 0.5, cy + r * 0.6), fill=fill)
    else:
        raise ConfigError(f"synthetic world: unknown content {content!r}; known: {', '.join(CONTENTS)}")


def _draw_pattern(d, pattern: str, size: int, color) -> None:
    step = max(4, size // 8)
    w = max(1, size // 32)
    if pattern == "stripes":
        for x in range(-size, size, step):
            d.line([(x, 0), (x + size, size)], fill=color, width=max(2, step // 3))
    elif pattern == "dots":
        r = max(1, step // 5)
        for y in range(step // 2, size, step):
            for x in range(step // 2, size, step):
                d.ellipse((x - r, y - r, x + r, y + r), fill=color)
    elif pattern == "checker":
        for y in range(0, size, step):
            for x in range(0, size, step):
                if (x // step + y // step) % 2 == 0:
                    d.rectangle((x, y, x + step - 1, y + step - 1), fill=color)
    elif pattern == "grid":
        for p in range(0, size, step):
            d.line([(p, 0), (p, size)], fill=color, width=w)
            d.line([(0, p), (size, p)], fill=color, width=w)
    elif pattern != "none":
        raise ConfigError(f"synthetic world: unknown pattern {pattern!r}; known: {', '.join(PATTERNS)}")


def render_image(attrs: ImageAttrs | dict, size: int = 64) -> Image.Image:
    """Draw `attrs` as a `size` x `size` RGB image; the same input gives the same pixels.

    Drawn at twice the size and downsampled, so shapes stay legible at 32 px.
    """
    from PIL import Image, ImageDraw

    if isinstance(attrs, dict):
        attrs = ImageAttrs.from_dict(attrs)
    ss = 2
    S = size * ss
    h, s, v = attrs.hue, attrs.saturation, attrs.brightness
    bg = _rgb(h, s * 0.35, 0.5 + 0.5 * v)  # a light tint of the palette
    pat = _rgb(h, s * 0.55, 0.3 + 0.5 * v)  # a darker tint, so patterns show
    fill = _rgb(h, s, v)
    line = _rgb(h, min(1.0, s + 0.2), v * 0.45)
    accent = _rgb(h + 0.5, 0.7, 0.95)  # detail elements in the complementary hue

    img = Image.new("RGB", (S, S), bg)
    d = ImageDraw.Draw(img)
    _draw_pattern(d, attrs.pattern, S, pat)
    r = attrs.scale * S / 2
    cx = S / 2 + attrs.offset_x * S
    cy = S / 2 + attrs.offset_y * S
    _draw_content(d, attrs.content, cx, cy, r, fill, line, bg, max(1, S // 48))
    if attrs.detail:
        drng = np.random.Generator(np.random.PCG64(attrs.detail_seed))
        er = max(1.5, S / 40)
        for _ in range(attrs.detail):
            x, y = drng.uniform(er, S - er, size=2)
            if drng.random() < 0.5:
                d.ellipse((x - er, y - er, x + er, y + er), fill=accent)
            else:
                d.polygon(_star(float(x), float(y), er * 1.6, 4, 0.4), fill=accent)
    return img.resize((size, size), Image.LANCZOS)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


# ---------------------------------------------------------------- the world


@dataclass
class PoolImage:
    uid: str
    prompt_index: int
    prompt: str
    attrs: ImageAttrs
    phi: np.ndarray


def world_prompts(cfg: WorldConfig) -> list[tuple[str, str]]:
    """(content, prompt text) per prompt; contents cycle so every class appears, no prompt twice."""
    rng = keyed_rng(cfg.world_seed, _T_PROMPTS)
    contents = list(CONTENTS)
    rng.shuffle(contents)
    first_template = rng.integers(len(PROMPT_TEMPLATES), size=len(contents))
    out = []
    for i in range(cfg.n_prompts):
        c = i % len(contents)
        t = (i // len(contents) + int(first_template[c])) % len(PROMPT_TEMPLATES)
        out.append((contents[c], PROMPT_TEMPLATES[t].format(c=contents[c])))
    return out


def _image_uid(cfg: WorldConfig, prompt_index: int, k: int) -> str:
    return f"syn{cfg.world_seed}-p{prompt_index:03d}-i{k:04d}-s{cfg.image_size}"


def world_pool(cfg: WorldConfig) -> list[list[PoolImage]]:
    """The image pool, per prompt. Image k of prompt p does not depend on the pool size."""
    pool = []
    for p, (content, prompt) in enumerate(world_prompts(cfg)):
        row = []
        for k in range(cfg.images_per_prompt):
            a = sample_attrs(keyed_rng(cfg.world_seed, _T_IMAGE, p, k), content)
            row.append(PoolImage(_image_uid(cfg, p, k), p, prompt, a, features(a)))
        pool.append(row)
    return pool


def group_weight_vectors(cfg: WorldConfig) -> np.ndarray:
    """Taste groups (n_groups x n_features); a function of world_seed only."""
    # `consensus` draws from `default`'s stream: the same seed gives the same
    # directions, only mixed with more of the common taste.
    rng = keyed_rng(cfg.world_seed, _T_GROUPS, PRESETS.index("default" if cfg.preset == "consensus" else cfg.preset))
    D = len(FEATURE_NAMES)
    idx = {n: i for i, n in enumerate(FEATURE_NAMES)}
    W = np.zeros((cfg.n_groups, D))
    if cfg.preset == "opposed":
        # Groups 2j and 2j+1 hold exactly opposite graded tastes over hue,
        # brightness and pattern, so a balanced population averages to nothing.
        for j in range(cfg.n_groups // 2):
            d = np.zeros(D)
            a = rng.uniform(0, 2 * math.pi)
            d[idx["hue_cos"]], d[idx["hue_sin"]] = math.cos(a), math.sin(a)
            d[idx["brightness"]] = 1.0 if rng.random() < 0.5 else -1.0
            pv = rng.standard_normal(len(PATTERNS))
            pv -= pv.mean()
            d[[idx[f"pattern_{p}"] for p in PATTERNS]] = pv / np.linalg.norm(pv)
            d *= cfg.taste_strength / np.linalg.norm(d)
            W[2 * j], W[2 * j + 1] = d, -d
    else:
        common = rng.standard_normal(D)
        for g in range(cfg.n_groups):
            w = math.sqrt(cfg.shared_taste) * common + math.sqrt(1 - cfg.shared_taste) * rng.standard_normal(D)
            W[g] = w * cfg.taste_strength / np.linalg.norm(w)
    return W


def user_id_of(cfg: WorldConfig, index: int) -> int:
    """User ids differ between user seeds, so train and new-user worlds never collide."""
    return (cfg.user_seed % 100_000) * 1_000_000 + index + 1


def user_groups(cfg: WorldConfig) -> np.ndarray:
    """Exact quotas by group share (largest remainder), shuffled with the user seed."""
    shares = np.asarray(cfg.shares())
    raw = shares * cfg.n_users
    counts = np.floor(raw).astype(int)
    rest = cfg.n_users - counts.sum()
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:rest]] += 1
    groups = np.repeat(np.arange(cfg.n_groups), counts)
    keyed_rng(cfg.world_seed, cfg.user_seed, _T_ASSIGN).shuffle(groups)
    return groups


def user_weights(cfg: WorldConfig, W: np.ndarray, group: int, index: int) -> np.ndarray:
    """The group's taste plus this person's own deviation (norm ~ sigma_individual x group norm)."""
    z = keyed_rng(cfg.world_seed, cfg.user_seed, _T_USER_W, index).standard_normal(W.shape[1])
    wg = W[group]
    return wg + cfg.sigma_individual * np.linalg.norm(wg) * z / math.sqrt(W.shape[1])


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


@dataclass
class PairRow:
    """One labelled pair, without image bytes."""

    row: int
    user_index: int
    user_id: int
    group: int
    prompt: str
    image_0: PoolImage
    image_1: PoolImage
    label_0: float
    p_0: float  # the true probability that image_0 is preferred


def user_pairs(
    cfg: WorldConfig, pool: list[list[PoolImage]], w: np.ndarray, index: int, n_pairs: int, tag: int = _T_PAIRS
) -> Iterator[tuple[PoolImage, PoolImage, float, float]]:
    """A user's pairs: same prompt, two images the user has not seen; label sampled from the utility."""
    rng = keyed_rng(cfg.world_seed, cfg.user_seed, tag, index)
    unseen = [list(range(len(row))) for row in pool]
    for _ in range(n_pairs):
        open_prompts = [p for p, u in enumerate(unseen) if len(u) >= 2]
        if not open_prompts:
            raise ConfigError("synthetic world: the image pool ran out of unseen images for a user")
        p = open_prompts[int(rng.integers(len(open_prompts)))]
        i, j = rng.choice(len(unseen[p]), size=2, replace=False)
        a, b = unseen[p][int(i)], unseen[p][int(j)]
        unseen[p] = [x for x in unseen[p] if x not in (a, b)]
        im0, im1 = pool[p][a], pool[p][b]
        p0 = _sigmoid((float(w @ im0.phi) - float(w @ im1.phi)) / cfg.temperature)
        label0 = 1.0 if rng.random() < p0 else 0.0
        yield im0, im1, label0, p0


def iter_pairs(
    cfg: WorldConfig, pool: list[list[PoolImage]] | None = None, W: np.ndarray | None = None
) -> Iterator[PairRow]:
    """Every labelled pair of the world, user by user, in output order."""
    pool = pool if pool is not None else world_pool(cfg)
    W = W if W is not None else group_weight_vectors(cfg)
    groups = user_groups(cfg)
    row = 0
    for u in range(cfg.n_users):
        g = int(groups[u])
        w = user_weights(cfg, W, g, u)
        for im0, im1, label0, p0 in user_pairs(cfg, pool, w, u, cfg.pairs_per_user):
            yield PairRow(row, u, user_id_of(cfg, u), g, im0.prompt, im0, im1, label0, p0)
            row += 1


class _PngCache:
    """Rendered PNG bytes by image uid, least recently used dropped first."""

    def __init__(self, size: int, capacity: int):
        self.size, self.capacity = size, capacity
        self._d: OrderedDict[str, bytes] = OrderedDict()

    def get(self, im: PoolImage) -> bytes:
        b = self._d.get(im.uid)
        if b is not None:
            self._d.move_to_end(im.uid)
            return b
        b = png_bytes(render_image(im.attrs, self.size))
        self._d[im.uid] = b
        if len(self._d) > self.capacity:
            self._d.popitem(last=False)
        return b


# ---------------------------------------------------------------- parquet output


def pickapic_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("user_id", pa.int64()),
            ("caption", pa.string()),
            ("jpg_0", pa.binary()),
            ("jpg_1", pa.binary()),
            ("label_0", pa.float64()),
            ("label_1", pa.float64()),
            ("image_0_uid", pa.string()),
            ("image_1_uid", pa.string()),
            ("best_image_uid", pa.string()),
            ("has_label", pa.bool_()),
            ("are_different", pa.bool_()),
            ("model_0", pa.string()),
            ("model_1", pa.string()),
            ("ranking_id", pa.int64()),
            ("created_at", pa.timestamp("us")),
        ]
    )


def _base_time(cfg: WorldConfig) -> _dt.datetime:
    # From the seeds, never the clock, so two builds are byte-identical.
    return _dt.datetime(2023, 1, 1) + _dt.timedelta(days=(cfg.world_seed * 7 + cfg.user_seed) % 365)


def _shard_table(cfg: WorldConfig, rows: Sequence[PairRow], cache: _PngCache):
    import pyarrow as pa

    base = _base_time(cfg)
    cols: dict[str, list] = {n: [] for n in pickapic_schema().names}
    for r in rows:
        cols["user_id"].append(r.user_id)
        cols["caption"].append(r.prompt)
        cols["jpg_0"].append(cache.get(r.image_0))
        cols["jpg_1"].append(cache.get(r.image_1))
        cols["label_0"].append(r.label_0)
        cols["label_1"].append(1.0 - r.label_0)
        cols["image_0_uid"].append(r.image_0.uid)
        cols["image_1_uid"].append(r.image_1.uid)
        cols["best_image_uid"].append(r.image_0.uid if r.label_0 == 1.0 else r.image_1.uid)
        cols["has_label"].append(True)
        cols["are_different"].append(True)
        cols["model_0"].append(MODEL_NAME)
        cols["model_1"].append(MODEL_NAME)
        cols["ranking_id"].append((cfg.user_seed % 100_000) * 10_000_000_000 + r.row + 1)
        cols["created_at"].append(base + _dt.timedelta(seconds=37 * r.row))
    return pa.Table.from_pydict(cols, schema=pickapic_schema())


def _write_parquet(path: Path, table) -> None:
    import pyarrow.parquet as pq

    from prefcli.atomic import atomic_path

    with atomic_path(path) as tmp:
        with pq.ParquetWriter(str(tmp), table.schema, compression="zstd") as w:
            w.write_table(table)


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.parquet"


def _progress(enabled: bool):
    from prefcli.progress import progress_bar

    return progress_bar(enabled)


def write_world(
    out_dir: str | os.PathLike, config: WorldConfig, progress: bool = True, overwrite: bool = False
) -> dict:
    """Write the world as Pick-a-Pic v2-schema shards plus its ground truth; return the counts.

    Shards are written one at a time, each atomically. An interrupted write
    resumes: shards already on disk for the same config are kept (they are
    deterministic), the rest are written. A finished world with the same
    config is left as it is.
    """
    import pyarrow as pa

    from prefcli import atomic

    cfg = config
    cfg.validate()
    out = Path(out_dir)
    cfg_dict = cfg.to_dict()
    world_json, partial_json = out / "world.json", out / ".world.partial.json"
    if not world_json.exists() and not partial_json.exists():
        atomic.check_output_dir(out, overwrite=overwrite)  # not a world prefcli wrote: never delete its shards
    out.mkdir(parents=True, exist_ok=True)
    if world_json.exists():
        try:
            old = json.loads(world_json.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(f"{world_json}: unreadable ({e}); delete the directory to rebuild") from e
        if old.get("config") == cfg_dict and old.get("summary") and old.get("version") == WORLD_FORMAT_VERSION:
            return dict(old["summary"], resumed=False, skipped=True)
    keep_existing = False
    if partial_json.exists():
        try:
            keep_existing = json.loads(partial_json.read_text()).get("config") == cfg_dict
        except (OSError, json.JSONDecodeError):
            keep_existing = False
    for stale in [world_json, out / "users.parquet", out / "images.parquet"] + (
        [] if keep_existing else sorted(out.glob("shard-*.parquet"))
    ):
        stale.unlink(missing_ok=True)
    atomic.write_text(partial_json, json.dumps({"config": cfg_dict}, indent=2, allow_nan=False))

    pool = world_pool(cfg)
    W = group_weight_vectors(cfg)
    groups = user_groups(cfg)
    cache = _PngCache(cfg.image_size, cfg.cache_images)
    n_shards = math.ceil(cfg.n_rows / cfg.rows_per_shard)
    used: set[str] = set()
    agree = 0
    oracle = 0.0
    resumed = 0
    buf: list[PairRow] = []
    shard = 0

    def flush() -> None:
        nonlocal shard, resumed
        path = out / shard_name(shard)
        if keep_existing and path.exists():
            resumed += 1
        else:
            _write_parquet(path, _shard_table(cfg, buf, cache))
        shard += 1
        buf.clear()

    with _progress(progress) as bar:
        task = bar.add_task("drawing the synthetic world", total=cfg.n_rows)
        for r in iter_pairs(cfg, pool, W):
            buf.append(r)
            used.add(r.image_0.uid)
            used.add(r.image_1.uid)
            agree += int((r.label_0 == 1.0) == (r.p_0 > 0.5))
            oracle += max(r.p_0, 1.0 - r.p_0)
            if len(buf) == cfg.rows_per_shard:
                flush()
                bar.advance(task, cfg.rows_per_shard)
        if buf:
            n = len(buf)
            flush()
            bar.advance(task, n)
    assert shard == n_shards

    # Ground truth for reference accuracies.
    users_tbl = pa.table(
        {
            "user_id": pa.array([user_id_of(cfg, u) for u in range(cfg.n_users)], pa.int64()),
            "user_index": pa.array(list(range(cfg.n_users)), pa.int64()),
            "group": pa.array([int(g) for g in groups], pa.int64()),
            "weights": pa.array(
                [user_weights(cfg, W, int(groups[u]), u).tolist() for u in range(cfg.n_users)], pa.list_(pa.float64())
            ),
        }
    )
    flat = [im for row in pool for im in row]
    attr_cols = {f.name: [getattr(im.attrs, f.name) for im in flat] for f in dataclasses.fields(ImageAttrs)}
    images_tbl = pa.table(
        {
            "image_uid": [im.uid for im in flat],
            "prompt_index": pa.array([im.prompt_index for im in flat], pa.int64()),
            "prompt": [im.prompt for im in flat],
            **attr_cols,
            "used": [im.uid in used for im in flat],
            "features": pa.array([im.phi.tolist() for im in flat], pa.list_(pa.float64())),
        }
    )
    _write_parquet(out / "users.parquet", users_tbl)
    _write_parquet(out / "images.parquet", images_tbl)
    counts = np.bincount(groups, minlength=cfg.n_groups)
    summary = {
        "rows": cfg.n_rows,
        "users": cfg.n_users,
        "images": len(used),
        "pool_images": len(flat),
        "prompts": cfg.n_prompts,
        "shards": n_shards,
        "groups": cfg.n_groups,
        "users_per_group": [int(c) for c in counts],
        # How often a label agrees with the user's noise-free preference, and
        # the expected accuracy of an oracle that knows each user's weights.
        "label_agrees_with_utility": agree / max(1, cfg.n_rows),
        "oracle_accuracy": oracle / max(1, cfg.n_rows),
        "resumed_shards": resumed,
    }
    world = {
        "format": "prefcli-synthetic-world",
        "version": WORLD_FORMAT_VERSION,
        "config": cfg_dict,
        "world_seed": cfg.world_seed,
        "user_seed": cfg.user_seed,
        "feature_names": list(FEATURE_NAMES),
        "group_weights": W.tolist(),
        "group_shares": list(cfg.shares()),
        "prompts": [p for _, p in world_prompts(cfg)],
        "model_name": MODEL_NAME,
        "shards": [shard_name(i) for i in range(n_shards)],
        "summary": summary,
    }
    atomic.write_text(world_json, json.dumps(world, indent=2, allow_nan=False) + "\n")
    partial_json.unlink(missing_ok=True)
    return dict(summary, skipped=False)


# ---------------------------------------------------------------- ground truth


@dataclass
class Truth:
    """The world's hidden variables: who likes what, and how much."""

    config: WorldConfig
    feature_names: list[str]
    group_weights: np.ndarray  # n_groups x n_features
    user_group: dict[int, int]
    user_weights: dict[int, np.ndarray]
    image_features: dict[str, np.ndarray]
    image_prompt: dict[str, str] = field(default_factory=dict)

    def features(self, image_uid: str) -> np.ndarray:
        try:
            return self.image_features[image_uid]
        except KeyError:
            raise DataError(f"synthetic world: unknown image uid {image_uid!r}") from None

    def utility(self, user_id: int, image_uid: str) -> float:
        try:
            w = self.user_weights[int(user_id)]
        except KeyError:
            raise DataError(f"synthetic world: unknown user id {user_id!r}") from None
        return float(w @ self.features(image_uid))

    def group_utility(self, group: int, image_uid: str) -> float:
        return float(self.group_weights[int(group)] @ self.features(image_uid))

    def prob_prefers(self, user_id: int, uid_a: str, uid_b: str) -> float:
        """P(user prefers a over b) under the world's label model."""
        return _sigmoid((self.utility(user_id, uid_a) - self.utility(user_id, uid_b)) / self.config.temperature)


def load_truth(out_dir: str | os.PathLike) -> Truth:
    """Read `world.json`, `users.parquet` and `images.parquet` written by `write_world`."""
    import pyarrow.parquet as pq

    out = Path(out_dir)
    wj = out / "world.json"
    if not wj.exists():
        raise DataError(f"{wj}: not found (is {out} a synthetic world written by `prefcli data synthetic`?)")
    try:
        world = json.loads(wj.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{wj}: unreadable ({e})") from e
    if world.get("format") != "prefcli-synthetic-world":
        raise DataError(f"{wj}: not a synthetic world description")
    if world.get("version") != WORLD_FORMAT_VERSION:
        raise DataError(f"{wj}: world format version {world.get('version')} is not {WORLD_FORMAT_VERSION}; rebuild it")
    try:
        users = pq.read_table(out / "users.parquet").to_pydict()
        images = pq.read_table(out / "images.parquet", columns=["image_uid", "prompt", "features"]).to_pydict()
    except (OSError, ValueError) as e:
        raise DataError(f"{out}: ground-truth parquet missing or unreadable ({e})") from e
    return Truth(
        config=WorldConfig.from_dict(world["config"]),
        feature_names=list(world["feature_names"]),
        group_weights=np.asarray(world["group_weights"], dtype=np.float64),
        user_group={int(u): int(g) for u, g in zip(users["user_id"], users["group"])},
        user_weights={int(u): np.asarray(w, dtype=np.float64) for u, w in zip(users["user_id"], users["weights"])},
        image_features={u: np.asarray(f, dtype=np.float64) for u, f in zip(images["image_uid"], images["features"])},
        image_prompt=dict(zip(images["image_uid"], images["prompt"])),
    )


def dataset_image_uids(out_dir: str | os.PathLike) -> dict[str, str]:
    """Dataset image id (sha256 of the stored PNG bytes, what the builder keys images by) -> world image uid."""
    import hashlib

    import pyarrow.parquet as pq

    out: dict[str, str] = {}
    for shard in sorted(Path(out_dir).glob("shard-*.parquet")):
        t = pq.read_table(shard, columns=["image_0_uid", "image_1_uid", "jpg_0", "jpg_1"]).to_pydict()
        for k in (0, 1):
            for uid, data in zip(t[f"image_{k}_uid"], t[f"jpg_{k}"]):
                out.setdefault(hashlib.sha256(data).hexdigest(), uid)
    return out


# ---------------------------------------------------------------- one user as folders


def write_user_folders(
    out_dir: str | os.PathLike,
    config: WorldConfig,
    user_id: int | None = None,
    n_history: int = 8,
    n_candidates: int = 8,
    group: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write one user as folders for `prefcli rank`; return `out_dir`.

    `user_id` picks a user of the world (same history as their first pairs);
    None draws a new person from the same population (the index after the
    world's last user; `group` fixes their taste group, else it is drawn by
    the group shares). Writes `liked/NNN.png` and `disliked/NNN.png` (pair k
    is the two files named k), `candidates/NNN.png` (fresh images of one
    prompt, never in the history), `prompts.json` (relative path -> prompt)
    and `truth.json` (candidate path -> true utility, and the true ranking).
    """
    from prefcli import atomic

    cfg = config
    cfg.validate()
    if n_history < 1 or n_candidates < 2:
        raise ConfigError("synthetic user folders: need n_history >= 1 and n_candidates >= 2")
    if n_history > cfg.n_prompts * (cfg.images_per_prompt // 2):
        raise ConfigError(f"synthetic user folders: n_history={n_history} exceeds the image pool")
    W = group_weight_vectors(cfg)
    frng = keyed_rng(cfg.world_seed, cfg.user_seed, _T_FOLDER, -1 if user_id is None else int(user_id))
    if user_id is None:
        index = cfg.n_users
        g = int(group) if group is not None else int(frng.choice(cfg.n_groups, p=np.asarray(cfg.shares())))
        uid = user_id_of(cfg, index)
    else:
        index = int(user_id) - user_id_of(cfg, 0)
        if not 0 <= index < cfg.n_users:
            raise ConfigError(
                f"synthetic user folders: user id {user_id} is not one of this world's {cfg.n_users} users (user_seed {cfg.user_seed})"
            )
        g = int(user_groups(cfg)[index])
        if group is not None and int(group) != g:
            raise ConfigError(f"synthetic user folders: user {user_id} belongs to group {g}, not {group}")
        uid = int(user_id)
    if not 0 <= g < cfg.n_groups:
        raise ConfigError(f"synthetic user folders: group {g} out of range (0..{cfg.n_groups - 1})")
    w = user_weights(cfg, W, g, index)
    pool = world_pool(cfg)
    out = Path(out_dir)
    # Only files an earlier run of this command wrote are replaced; a folder with anyone else's
    # pictures is refused (or, with --overwrite, written into with theirs kept).
    planned = (
        [f"{s}/{k:03d}.png" for s in ("liked", "disliked") for k in range(n_history)]
        + [f"candidates/{k:03d}.png" for k in range(n_candidates)]
        + ["truth.json", "prompts.json"]
    )
    atomic.claim_folder(
        out, planned, "prefcli data synthetic --user-folders", overwrite=overwrite, option="--user-folders"
    )
    for sub in ("liked", "disliked", "candidates"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    prompts: dict[str, str] = {}
    history = []
    for k, (im0, im1, label0, _) in enumerate(user_pairs(cfg, pool, w, index, n_history)):
        liked, disliked = (im0, im1) if label0 == 1.0 else (im1, im0)
        name = f"{k:03d}.png"
        atomic.write_bytes(out / "liked" / name, png_bytes(render_image(liked.attrs, cfg.image_size)))
        atomic.write_bytes(out / "disliked" / name, png_bytes(render_image(disliked.attrs, cfg.image_size)))
        prompts[f"liked/{name}"] = liked.prompt
        prompts[f"disliked/{name}"] = disliked.prompt
        history.append(
            {
                "liked": f"liked/{name}",
                "disliked": f"disliked/{name}",
                "prompt": liked.prompt,
                "liked_uid": liked.uid,
                "disliked_uid": disliked.uid,
                "liked_utility": float(w @ liked.phi),
                "disliked_utility": float(w @ disliked.phi),
            }
        )
    p = int(frng.integers(cfg.n_prompts))
    content, prompt = world_prompts(cfg)[p]
    utilities: dict[str, float] = {}
    cand_uids: dict[str, str] = {}
    for k in range(n_candidates):
        a = sample_attrs(keyed_rng(cfg.world_seed, cfg.user_seed, _T_FOLDER, index, p, k), content)
        name = f"candidates/{k:03d}.png"
        atomic.write_bytes(out / name, png_bytes(render_image(a, cfg.image_size)))
        utilities[name] = float(w @ features(a))
        cand_uids[name] = f"syn{cfg.world_seed}-u{uid}-c{k:03d}-s{cfg.image_size}"
        prompts[name] = prompt
    ranking = sorted(utilities, key=lambda n: -utilities[n])
    truth = {
        "user_id": uid,
        "group": g,
        "new_user": user_id is None,
        "weights": w.tolist(),
        "feature_names": list(FEATURE_NAMES),
        "temperature": cfg.temperature,
        "prompt": prompt,
        "candidates": utilities,
        "candidate_uids": cand_uids,
        "ranking": ranking,
        "history": history,
        "config": cfg.to_dict(),
    }
    atomic.write_text(out / "truth.json", json.dumps(truth, indent=2, allow_nan=False) + "\n")
    atomic.write_text(out / "prompts.json", json.dumps(prompts, indent=2, allow_nan=False) + "\n")
    return out
