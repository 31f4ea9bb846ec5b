"""The formula and preprocessing of hpsv2's official evaluation code, without its package.

Written after `hpsv2/img_score.py::score` (github.com/tgxs002/HPSv2): the
model is open_clip's architecture with the checkpoint's `state_dict` loaded
strictly; `preprocess_val` is Resize(image_size, bicubic) → CenterCrop →
RGB → ToTensor → Normalize(OpenAI CLIP mean/std); each image is scored alone:
`outputs = model(image, text)`, `image_features @ text_features.T`, diagonal.
(The official code runs under CUDA autocast; on CPU that is fp32.)
"""

from __future__ import annotations

from typing import Any, Sequence

OPENAI_DATASET_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_DATASET_STD = (0.26862954, 0.26130258, 0.27577711)


def preprocess_val(image_size: int, mean: Sequence[float] = OPENAI_DATASET_MEAN, std: Sequence[float] = OPENAI_DATASET_STD) -> Any:
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    def _convert_to_rgb(image):
        return image.convert("RGB")

    return Compose(
        [
            Resize(image_size, interpolation=InterpolationMode.BICUBIC),
            CenterCrop(image_size),
            _convert_to_rgb,
            ToTensor(),
            Normalize(mean=mean, std=std),
        ]
    )


def load_model(arch: str, checkpoint: str) -> Any:
    import open_clip
    import torch

    model = open_clip.create_model(arch, pretrained=None, output_dict=True)
    checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def score(model: Any, arch: str, images: Sequence[Any], prompt: str, preprocess: Any = None) -> list[float]:
    """One HPS per image, the official loop: one image and the prompt per forward pass."""
    import open_clip
    import torch

    size = model.visual.image_size
    preprocess = preprocess or preprocess_val(size[0] if isinstance(size, (tuple, list)) else size)
    tokenizer = open_clip.get_tokenizer(arch)
    result = []
    for img in images:
        with torch.no_grad():
            image = preprocess(img).unsqueeze(0)
            text = tokenizer([prompt])
            outputs = model(image, text)
            image_features, text_features = outputs["image_features"], outputs["text_features"]
            logits_per_image = image_features @ text_features.T
            hps_score = torch.diagonal(logits_per_image).cpu().numpy()
        result.append(float(hps_score[0]))
    return result
