"""PreferThinker's evaluation protocol: the question, the answer tags, the parsing.

Everything here follows `eval_PreferThinker.py` of github:Shengqi77/PreferThinker
(commit 4cdc1efc, the file read for this module; line numbers below are that
file's). The strings are the protocol's data, kept verbatim (typos and double
spaces included): a judge sees exactly the question PreferThinker's own
evaluation asks, and tests check the token ids against that script's
construction (tests/reference/preferthinker.py).

- The system turn is SYSTEM_PROMPT (lines 16-18).
- The user turn (lines 101-149): when the person has both liked and disliked
  images, PREFERRED_INTRO, the preferred images (at most `num_history`,
  default 5, line 98), NON_PREFERRED_INTRO, the non-preferred images; then
  CANDIDATES_INTRO, "Image A", image A, "Image B", image B, and
  FINAL_INSTRUCTION. History image items also carry the `text`/`label`
  "Preferred Image {i}." keys of lines 114-115 (the Qwen chat template prints
  image items as images, so they do not reach the prompt; they are kept so any
  template sees the same items).
- The prompt is `apply_chat_template(messages, add_generation_prompt=True,
  add_vision_id=True)` (line 163): every image is preceded by "Picture N: ".
- Images go through qwen_vl_utils 0.0.11 `fetch_image` (line 165 via
  `process_vision_info`; the version PreferThinker's requirements.txt pins):
  RGBA composited on white, anything else `convert("RGB")`, then a PIL resize
  (default filter, bicubic) to `smart_resize`'s size: both sides multiples of
  28, pixels within [4·28², 16384·28²].
- Decoding (lines 176-182): greedy (`do_sample=False`), repetition penalty
  1.15, `max_new_tokens` 4096 by default (line 262); decoded with
  `skip_special_tokens=True, clean_up_tokenization_spaces=False`.
- Parsing (lines 214-218): the answer is the last `<answer>…</answer>`,
  stripped, and counts only if it equals "Image A" or "Image B" (line 220
  compares it with the ground truth by equality); the preference profiles come
  from `extract_attributes` + `clean_attributes_string` (lines 38-55). The two
  `total_score`s of the think block ("Image A: total_score=2+1+2+3+3=11") are
  parsed here too (the script does not parse them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from prefcli.qwen2vl import IMAGE_FACTOR, MAX_PIXELS, MAX_RATIO, MIN_PIXELS, smart_resize  # noqa: F401 - re-exported

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

# eval_PreferThinker.py lines 16-18.
SYSTEM_PROMPT = (
    "\n"
    "The user provides a set of historically preferred and non-preferred images. Based on this historical data, "
    "please predict the user’s <visual preference profile> and non-preference profile across five key profile: art "
    "style, color, artistic medium, saturation, and  detail. The predicted results should be described using terms "
    "corresponding to each of these five visual profile.\n"
    "Subsequently, the user provides two candidate images: Image A and Image B. Using the predicted <visual "
    "preference profile>, assign an interpretability score (0–5) for each of the five profile for both images. A "
    "higher score indicates stronger alignment with the user’s preferred profile, while a lower score suggests "
    "greater similarity to non-preferred profile. Each score must be accompanied by a rationale explaining the "
    "rating.\n"
    "Finally, sum the scores across all five profile for each image. The image with the higher total score should "
    "be identified as the one the user is more likely to prefer.\n"
    "Below are some output examples:\n"
    "\n"
    "output example 1:\n"
    '"<visual preference profile>\n'
    '"Art Styles": "Mesoamerican Art",\n'
    '"Color": "Pink",\n'
    '"Artistic Medium": "Coiling",\n'
    '"Saturation": "Muted",\n'
    '"Detail": "Realistic"\n'
    "</visual preference profile>\n"
    "\n"
    "<visual non-preference profile>\n"
    '"Art Styles": "Pixel Art",  \n'
    '"Color": "Jungle Green",\n'
    '"Artistic Medium": "Digital Painting",\n'
    '"Saturation": "Mid-tone",\n'
    '"Detail": "Selective"\n'
    "</visual non-preference profile>\n"
    "\n"
    "<think>\n"
    "1. Artistic style: \n"
    "Image A(2) - The clustered botanical forms with their geometric arrangement display a digital illustration "
    "style that lacks the ceremonial symbolism and cultural motifs characteristic of Mesoamerican Art. The "
    "stylized plant structures with their symmetrical composition and modern rendering technique align more "
    "closely with contemporary digital illustration, falling between the preferred Mesoamerican Art and "
    "non-preferred Pixel Art styles; \n"
    "Image B(5) - The vibrant fruit-like structures against the pink background incorporate organic forms "
    "reminiscent of Mesoamerican Art's natural symbolism. The decorative patterning on the pink background echoes "
    "geometric motifs found in Mesoamerican codices and textiles, while the illustrative technique maintains "
    "cultural resonance without digital flatness.\n"
    "\n"
    "2. Color: \n"
    "Image A(1) - The predominant jungle green palette with varying shades of emerald and forest green throughout "
    'the botanical elements directly aligns with the non-preferred "Jungle Green" attribute. The monochromatic '
    "green scheme lacks the warmth and vibrancy associated with the preferred pink tones, creating a cool visual "
    "temperature that contradicts the user's color preferences; \n"
    "Image B(5) - The vibrant pink background creates an immediate visual harmony with the preferred color "
    "attribute. The gradient transitions from salmon to rose pink across the composition provide depth while "
    "maintaining the essential pink identity, complemented by contrasting green foliage that enhances rather than "
    "dominates the preferred pink palette.\n"
    "\n"
    "3. Artistic Medium: \n"
    "Image A(2) - The smooth gradients and precise edges of the plant structures reveal digital painting "
    "techniques with algorithmic precision in the leaf arrangements. The technical execution shows clear digital "
    "origin with its perfect symmetry and computer-generated texture mapping, closely resembling the non-preferred "
    '"Digital Painting" medium rather than the organic irregularities of coiled materials; \n'
    "Image B(4) - The textured rendering of the fruit-like structures suggests dimensional craftsmanship "
    "reminiscent of coiling techniques. The visible brush texture and canvas grain beneath the illustration "
    "creates a handcrafted quality that references traditional media, though not fully achieving the "
    "three-dimensional quality of true coiling work.\n"
    "\n"
    "4. Saturation: \n"
    "Image A(3) - The green elements display moderate saturation levels with some intensity in the central "
    "portions balanced by darker, less saturated areas in the surrounding foliage. This creates a mid-tone "
    "saturation profile that neither strongly aligns with the preferred muted quality nor pushes into high "
    "saturation territory, placing it in a neutral position between preferences; \n"
    "Image B(4) - The pink background demonstrates a restrained saturation that avoids overwhelming vibrancy while "
    "maintaining color identity. The fruit structures display a gradual desaturation from center to edges, "
    'creating a subdued color presence that aligns with the preferred "Muted" attribute while retaining necessary '
    "definition.\n"
    "\n"
    "5. Detail: \n"
    "Image A(3) - The plant structures show moderate detail with defined leaf shapes and textural elements, but "
    "employ a stylized approach that simplifies natural complexity. The selective focus on certain botanical "
    "features while generalizing others creates a balanced but not fully realistic representation, positioning it "
    "between preferred realistic and non-preferred selective detail; \n"
    "Image B(4) - The illustration demonstrates careful attention to botanical accuracy in the fruit structures "
    "with realistic light interaction, dimensional shading, and textural variations. The leaf veining and organic "
    "transitions between elements show commitment to naturalistic representation, though slightly stylized in "
    "execution rather than photorealistic.\n"
    "\n"
    "Total:\n"
    "Image A: total_score=2+1+2+3+3=11\n"
    "Image B: total_score=5+5+4+4+4=22\n"
    "</think>\n"
    "\n"
    '<answer>Image B</answer>"\n'
    "\n"
    "\n"
    "output example 2:\n"
    '"<visual preference profile>\n'
    '"Art Styles": "Oceanic Art",\n'
    '"Color": "Alloy Silver",\n'
    '"Artistic Medium": "Silkscreen",\n'
    '"Saturation": "Pastel",\n'
    '"Detail": "Smooth"\n'
    "</visual preference profile>\n"
    "\n"
    "<visual non-preference profile>\n"
    '"Art Styles": "Romanticism",\n'
    '"Color": "Charcoal Gray",\n'
    '"Artistic Medium": "3D Modeling",\n'
    '"Saturation": "Intense",\n'
    '"Detail": "Fine"\n'
    "</visual non-preference profile>\n"
    "\n"
    "<think>\n"
    "1. Artistic style: \n"
    "Image A(4) - The sled dogs in Image A exhibit a dynamic portrayal that connects to Oceanic Art's emphasis on "
    "movement and natural forms. The flowing motion of the dogs against the snow landscape creates visual rhythms "
    "reminiscent of wave patterns found in Oceanic artistic traditions, while avoiding the dramatic emotional "
    "intensity typical of Romanticism; \n"
    "Image B(3) - The composition in Image B shows dogs in similar dynamic motion but with a more dramatic "
    "contrast between the foreground subject and background forest, creating a slight emotional tension that leans "
    "somewhat toward Romantic artistic sensibilities, though the overall treatment remains balanced between "
    "styles.\n"
    "\n"
    "2. Color: \n"
    "Image A(4) - The color palette in Image A features subtle silver-blue tones in the snow and sky that closely "
    "align with the preferred Alloy Silver coloration, creating a metallic sheen effect across the image that "
    "enhances the dogs' natural coloring without using harsh charcoal tones; \n"
    "Image B(2) - Image B employs a darker, more contrasting palette with charcoal gray tones dominating the "
    "background forest and creating stronger shadows on the snow, moving away from the preferred silver tones "
    "toward the non-preferred charcoal gray spectrum.\n"
    "\n"
    "3. Artistic Medium: \n"
    "Image A(4) - The rendering technique in Image A has a smooth, consistent quality with even lighting that "
    "creates a silkscreen-like effect, particularly in how the light interacts with the snow surface and the dogs' "
    "fur, giving it a flattened yet detailed appearance characteristic of silkscreen prints; \n"
    "Image B(2) - Image B displays characteristics more aligned with 3D modeling techniques, particularly in how "
    "the depth of field is rendered between foreground and background elements, with the forest creating a "
    "dimensional space that feels more computationally rendered than screen printed.\n"
    "\n"
    "4. Saturation: \n"
    "Image A(5) - The color treatment in Image A employs pastel-like, subdued saturation levels that create a "
    "gentle visual experience, particularly in the background sky and snow areas which show subtle color "
    "variations without intensity; \n"
    "Image B(2) - Image B features more intensely saturated elements, especially in the contrast between the dogs "
    "and the background forest, creating a more dramatic visual impact that aligns with the non-preferred intense "
    "saturation attribute.\n"
    "\n"
    "5. Detail: \n"
    "Image A(4) - The snow texture and dog fur in Image A are rendered with a smooth, flowing quality that "
    "maintains detail without excessive definition, creating a harmonious visual experience that aligns with the "
    "preferred smooth detail attribute; \n"
    "Image B(3) - Image B presents a more mixed approach to detail, with the foreground dog showing smoother "
    "rendering but with finer detail definition in the fur and harness elements, placing it between the preferred "
    "smooth and non-preferred fine detail profile.\n"
    "\n"
    "Total:\n"
    "Image A: total_score=4+4+4+5+4=21\n"
    "Image B: total_score=3+2+2+2+3=12\n"
    "</think>\n"
    "\n"
    '<answer>Image A</answer>"\n'
)

# Line 106: before the preferred images.
PREFERRED_INTRO = (
    "First, given the following user's historical preferred images. Please integrate the common stylistic "
    "attributes from historical preference images into the <visual preference profile> </visual preference "
    "profile> tags. Focusing on FIVE attributes: artistic style, Color, Artistic Medium, Saturation, Detail. "
    "Please generate responses with varied word choices, avoiding unnecessary repetition."
)

# Line 120: before the non-preferred images.
NON_PREFERRED_INTRO = (
    "Second, given the following user's historical non-preferred images. Please integrate the common stylistic "
    "attributes from historical non-preference images into the <visual non-preference profile> </visual "
    "non-preference profile> tags. Focusing on FIVE attributes: Artistic style, Color, Artistic Medium, "
    "Saturation, Detail. Please generate responses with varied word choices, avoiding unnecessary repetition."
)

# Line 134 (two spaces before 'two', as upstream).
CANDIDATES_INTRO = "Then, given the following  two candidate images: Image A and Image B."

# Line 148: the closing instruction with the answer tags.
FINAL_INSTRUCTION = (
    "Using the predicted preference profile and non-preference profile, please analyze and score the two images "
    "across five dimensions. Sum the scores from the five dimensions to obtain a total score, and determine which "
    "image the user prefers based on the total score. First, enclose the preferference profile within <visual "
    "preference profile> and </visual preference profile>, and the non-preferred profile within <visual "
    "non-preference profile> and </visual non-preference profile>. Then, place the multi-dimensional analysis and "
    "scoring of the two images within <think> and </think>. Finally, provide the selected answer between <answer> "
    "and </answer> tags. The answer should be in the format: <answer>Image A</answer> or <answer>Image B</answer>"
)

# Names the protocol revision in cache keys: bump it with any change to the question or the parsing.
PROTOCOL_VERSION = "preferthinker-eval@4cdc1efc.1"
ANSWERS = ("Image A", "Image B")
DEFAULT_NUM_HISTORY = 5  # line 261: --num_history
DEFAULT_MAX_NEW_TOKENS = 4096  # line 262: --max_new_tokens
DEFAULT_REPETITION_PENALTY = 1.15  # line 181
# qwen_vl_utils 0.0.11 vision_process.py: IMAGE_FACTOR, MIN_PIXELS, MAX_PIXELS, MAX_RATIO (prefcli.qwen2vl holds them).


# -- the question ----------------------------------------------------------------


def build_messages(
    preferred: Sequence[Any],
    non_preferred: Sequence[Any],
    image_a: Any,
    image_b: Any,
    num_history: int = DEFAULT_NUM_HISTORY,
) -> list[dict]:
    """The two chat turns of lines 94-154 with the given image objects in place of `file://` paths."""
    preferred = list(preferred)[:num_history]
    non_preferred = list(non_preferred)[:num_history]
    content: list[dict] = []
    if preferred and non_preferred:  # line 103: no history block unless both kinds exist
        content.append({"type": "text", "text": PREFERRED_INTRO})
        for i, img in enumerate(preferred):
            content.append(
                {
                    "type": "image",
                    "image": img,
                    "text": f"Preferred Image {i + 1}.",
                    "label": f"Preferred Image {i + 1}.",
                }
            )
        content.append({"type": "text", "text": NON_PREFERRED_INTRO})
        for i, img in enumerate(non_preferred):
            content.append(
                {
                    "type": "image",
                    "image": img,
                    "text": f"Non-Preferred Image {i + 1}.",
                    "label": f"Non-Preferred Image {i + 1}.",
                }
            )
    content.append({"type": "text", "text": CANDIDATES_INTRO})
    content.append({"type": "text", "text": "Image A"})
    content.append({"type": "image", "image": image_a})
    content.append({"type": "text", "text": "Image B"})
    content.append({"type": "image", "image": image_b})
    content.append({"type": "text", "text": FINAL_INSTRUCTION})
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": content},
    ]


def message_images(messages: Sequence[dict]) -> list[Any]:
    """The image objects in the order the chat template places them (what process_vision_info returns)."""
    return [
        c["image"]
        for m in messages
        if isinstance(m["content"], list)
        for c in m["content"]
        if "image" in c or c.get("type") == "image"
    ]


# -- the pixels ------------------------------------------------------------------


def prepare_image(image: Image.Image, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """What qwen_vl_utils 0.0.11 `fetch_image` hands the processor: RGB (RGBA over white), resized by smart_resize."""
    from PIL import Image

    if image.mode == "RGBA":
        rgb = Image.new("RGB", image.size, (255, 255, 255))
        rgb.paste(image, mask=image.split()[3])
    else:
        rgb = image.convert("RGB")
    width, height = rgb.size
    h, w = smart_resize(height, width, IMAGE_FACTOR, min_pixels, max_pixels)
    return rgb.resize((w, h))  # PIL's default filter, as upstream


# -- the answer ------------------------------------------------------------------


def clean_attributes_string(text: str) -> str:
    """Lines 38-41: drop double quotes, collapse whitespace."""
    return re.sub(r"\s+", " ", text.replace('"', "")).strip()


def extract_attributes(text: str, tag: str) -> str:
    """Lines 43-55: the last <tag>…</tag> (or, as upstream, the whole text when there is none), one line, lower case."""
    matches = re.findall(f"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
    if matches:
        text = matches[-1]
    for char in ("\n", "\r"):
        text = re.sub(r"(?<=\s)" + re.escape(char), "", text)
        text = re.sub(r"(?<!\s)" + re.escape(char), " ", text)
    return text.strip().rstrip(".").lower()


_TOTAL = re.compile(r"Image ([AB]):\s*total_score\s*=\s*([0-9+\s.]*?)\s*=\s*(\d+(?:\.\d+)?)")


def parse_total_scores(text: str) -> tuple[float | None, float | None]:
    """The last "Image A: total_score=…=N" and "Image B: …" of the output (None where absent)."""
    found: dict[str, float] = {}
    for m in _TOTAL.finditer(text):
        found[m.group(1)] = float(m.group(3))
    return found.get("A"), found.get("B")


def parse_output(text: str) -> dict:
    """Everything the protocol reads from one generated answer.

    Returns winner (0 for Image A, 1 for Image B, None when there is no valid
    answer: then `error` says why), answer (the raw extracted text), the two
    total scores, and the predicted preference and non-preference profiles.
    """
    answers = re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)
    answer = answers[-1].strip() if answers else None
    has_pref = re.search(r"<visual preference profile>(.*?)</visual preference profile>", text, re.DOTALL) is not None
    has_non = (
        re.search(r"<visual non-preference profile>(.*?)</visual non-preference profile>", text, re.DOTALL) is not None
    )
    out: dict = {
        "winner": ANSWERS.index(answer) if answer in ANSWERS else None,
        "answer": answer,
        "total_scores": list(parse_total_scores(text)),
        "preference_profile": clean_attributes_string(extract_attributes(text, "visual preference profile"))
        if has_pref
        else None,
        "non_preference_profile": clean_attributes_string(extract_attributes(text, "visual non-preference profile"))
        if has_non
        else None,
    }
    if answer is None:
        out["error"] = "no answer: the output has no <answer>…</answer> tag"
    elif out["winner"] is None:
        out["error"] = f"no answer: {answer[:60]!r} is neither 'Image A' nor 'Image B'"
    return out
