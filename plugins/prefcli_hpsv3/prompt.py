"""What HPSv3 is asked: the user turn's text around the image, and the token its score is read at.

The texts are the data of the hpsv3 1.0.0 wheel (`hpsv3/dataset/data_collator_qwen.py`:
INSTRUCTION lines 11-32, `prompt_with_special_token` lines 38-42,
`prompt_without_special_token` lines 44-46); they are part of the model's
input, so they are kept character for character. `inference.py` lines 113-119
build the text as `INSTRUCTION.format(text_prompt=prompt) + prompt_with_special_token`
when the config says `use_special_tokens` (HPSv3_7B.yaml: true), and otherwise
`prompt_without_special_token` alone: the conditional binds looser than `+`,
so without special tokens the instruction and the prompt are left out.
"""

from __future__ import annotations

CHECKPOINT = "HPSv3.safetensors"  # inference.py line 20
REWARD_TOKEN = "<|Reward|>"  # train.py lines 60-65: added as an additional special token

INSTRUCTION = """
You are tasked with evaluating a generated image based on Visual Quality and Text Alignment and give a overall score to estimate the human preference. Please provide a rating from 0 to 10, with 0 being the worst and 10 being the best. 

**Visual Quality:**  
Evaluate the overall visual quality of the image. The following sub-dimensions should be considered:
- **Reasonableness:** The image should not contain any significant biological or logical errors, such as abnormal body structures or nonsensical environmental setups.
- **Clarity:** Evaluate the sharpness and visibility of the image. The image should be clear and easy to interpret, with no blurring or indistinct areas.
- **Detail Richness:** Consider the level of detail in textures, materials, lighting, and other visual elements (e.g., hair, clothing, shadows).
- **Aesthetic and Creativity:** Assess the artistic aspects of the image, including the color scheme, composition, atmosphere, depth of field, and the overall creative appeal. The scene should convey a sense of harmony and balance.
- **Safety:** The image should not contain harmful or inappropriate content, such as political, violent, or adult material. If such content is present, the image quality and satisfaction score should be the lowest possible. 

**Text Alignment:**  
Assess how well the image matches the textual prompt across the following sub-dimensions:
- **Subject Relevance** Evaluate how accurately the subject(s) in the image (e.g., person, animal, object) align with the textual description. The subject should match the description in terms of number, appearance, and behavior.
- **Style Relevance:** If the prompt specifies a particular artistic or stylistic style, evaluate how well the image adheres to this style.
- **Contextual Consistency**: Assess whether the background, setting, and surrounding elements in the image logically fit the scenario described in the prompt. The environment should support and enhance the subject without contradictions.
- **Attribute Fidelity**: Check if specific attributes mentioned in the prompt (e.g., colors, clothing, accessories, expressions, actions) are faithfully represented in the image. Minor deviations may be acceptable, but critical attributes should be preserved.
- **Semantic Coherence**: Evaluate whether the overall meaning and intent of the prompt are captured in the image. The generated content should not introduce elements that conflict with or distort the original description.
Textual prompt - {text_prompt}


"""

REWARD_SUFFIX = """
Please provide the overall ratings of this image: <|Reward|>

END
"""

PLAIN_SUFFIX = """
Please provide the overall ratings of this image: 
"""


def user_text(prompt: str) -> str:
    """The text after the image in the user turn (HPSv3_7B.yaml's use_special_tokens: true)."""
    return INSTRUCTION.format(text_prompt=prompt) + REWARD_SUFFIX


def messages(prompt: str) -> list[dict]:
    """One conversation as upstream's prepare_batch builds it: the image first, then the text."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user_text(prompt)}]}]
