"""PreferThinker's question as `eval_PreferThinker.py` builds it (github:Shengqi77/PreferThinker @ 4cdc1efc).

Written out here in the script's own shape, from one PreferImg-Bench record
(`prefered_images`, `non_prefered_images`, `imageA`, `imageB`, paths relative
to an image root), so the tests can hold prefcli's `vlm-judge` against it:

- lines 94-99: the first `num_history` (default 5, line 261) preferred and
  non-preferred paths;
- lines 101-149: the user turn: the history block only when both lists are
  non-empty (line 103), history images as `file://` paths with `text`/`label`
  "Preferred Image {i+1}." (lines 111-116, 125-130), then the candidates'
  intro, "Image A", image A, "Image B", image B, the closing instruction;
- lines 151-154: the system turn holding SYSTEM_PROMPT, then the user turn;
- line 163: `processor.apply_chat_template(msg, add_generation_prompt=True, add_vision_id=True)`;
- lines 165-173: `process_vision_info` (qwen_vl_utils) and the processor call,
  `padding=True, padding_side="left"`.

The prompt strings are imported from the plugin: their equality with the
upstream file is pinned separately, by the length and sha256 of each string as
the upstream file holds it (tests/scorers/test_vlmjudge.py).
"""

from __future__ import annotations

import os
from typing import Any


def upstream_messages(x: dict, image_root: str, num_history: int = 5) -> list[dict]:
    from prefcli_vlmjudge.protocol import (
        CANDIDATES_INTRO,
        FINAL_INSTRUCTION,
        NON_PREFERRED_INTRO,
        PREFERRED_INTRO,
        SYSTEM_PROMPT,
    )

    imageA_paths = x.get("imageA", "")
    imageB_paths = x.get("imageB", "")
    preferred_paths = x.get("prefered_images", [])[:num_history]
    non_preferred_paths = x.get("non_prefered_images", [])[:num_history]
    content: list[dict] = []
    if preferred_paths and non_preferred_paths:
        content.append({"type": "text", "text": PREFERRED_INTRO})
        for i, img_path in enumerate(preferred_paths):
            img_path_abs = os.path.join(image_root, img_path)
            content.append({"type": "image", "image": f"file://{img_path_abs}", "text": f"Preferred Image {i+1}.", "label": f"Preferred Image {i+1}."})
        content.append({"type": "text", "text": NON_PREFERRED_INTRO})
        for i, img_path in enumerate(non_preferred_paths):
            img_path_abs = os.path.join(image_root, img_path)
            content.append({"type": "image", "image": f"file://{img_path_abs}", "text": f"Non-Preferred Image {i+1}.", "label": f"Non-Preferred Image {i+1}."})
    content.append({"type": "text", "text": CANDIDATES_INTRO})
    if imageA_paths and imageB_paths:
        content.append({"type": "text", "text": "Image A"})
        content.append({"type": "image", "image": f"file://{os.path.join(image_root, imageA_paths)}"})
        content.append({"type": "text", "text": "Image B"})
        content.append({"type": "image", "image": f"file://{os.path.join(image_root, imageB_paths)}"})
    content.append({"type": "text", "text": FINAL_INSTRUCTION})
    return [{"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]}, {"role": "user", "content": content}]


def upstream_text(processor: Any, batch_messages: list[list[dict]]) -> list[str]:
    """Line 163 (tokenize=False is transformers 4.49's default for processors, spelled out for transformers 5)."""
    return [processor.apply_chat_template(msg, tokenize=False, add_generation_prompt=True, add_vision_id=True) for msg in batch_messages]


def upstream_inputs(processor: Any, batch_messages: list[list[dict]]) -> Any:
    """Lines 163-173 with qwen_vl_utils' own `process_vision_info` (the test oracle, installed --no-deps)."""
    from qwen_vl_utils import process_vision_info

    text = upstream_text(processor, batch_messages)
    image_inputs, video_inputs = process_vision_info(batch_messages)
    return processor(text=text, images=image_inputs, videos=video_inputs, padding=True, padding_side="left", return_tensors="pt")
