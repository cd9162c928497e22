"""Every family at its common size, for ``bench/gpu_families.py``: the real config (tests/fixtures/model_configs)
with the token ids of the family's tiny tokenizer, and the family's real processor at the real image settings."""

from __future__ import annotations

from typing import Any

import family_models as fm

FIXTURES = {
    "qwen2_vl": "qwen2-vl-7b-instruct", "qwen2_5_vl": "qwen2.5-vl-7b-instruct", "qwen3_vl": "qwen3-vl-8b-instruct",
    "llava": "llava-1.5-7b", "llava_next": "llava-v1.6-mistral-7b", "llava_onevision": "llava-onevision-qwen2-7b",
    "gemma3": "gemma-3-4b-it", "smolvlm": "smolvlm-instruct", "idefics3": "idefics3-8b-llama3",
    "paligemma": "paligemma2-3b-448", "mllama": "llama-3.2-11b-vision-instruct", "llama": "llama-3-8b-instruct",
    "qwen2": "qwen2.5-7b-instruct", "qwen3": "qwen3-8b", "gemma3_text": "gemma-3-1b-it",
    "smollm2": "smollm2-1.7b-instruct",
}


def _image_processor(name: str, config: dict[str, Any]) -> Any:
    import transformers as T

    vision = config.get("vision_config") or {}
    if name in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        patch = int(vision.get("patch_size", 14))
        return T.Qwen2VLImageProcessorPil(patch_size=patch, merge_size=2,
                                          size={"shortest_edge": (2 * patch) ** 2 * 4, "longest_edge": 12845056})
    size = int(vision.get("image_size", 336))
    if name == "llava":
        return T.CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    if name == "llava_next":
        return T.LlavaNextImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                            image_grid_pinpoints=config["image_grid_pinpoints"])
    if name == "llava_onevision":
        return T.LlavaOnevisionImageProcessorPil(size={"height": size, "width": size},
                                                 image_grid_pinpoints=config["image_grid_pinpoints"])
    if name == "gemma3":
        return T.Gemma3ImageProcessorPil(size={"height": size, "width": size})
    if name in ("smolvlm", "idefics3"):
        cls = T.SmolVLMImageProcessorPil if name == "smolvlm" else T.Idefics3ImageProcessorPil
        return cls(size={"longest_edge": 4 * size}, max_image_size={"longest_edge": size})
    if name == "paligemma":
        image = T.SiglipImageProcessorPil(size={"height": size, "width": size})
        image.image_seq_length = (size // int(vision.get("patch_size", 14))) ** 2
        return image
    if name == "mllama":
        return T.MllamaImageProcessorPil(size={"height": size, "width": size},
                                         max_image_tiles=int(vision.get("max_num_tiles", 4)))
    raise KeyError(name)


def common(name: str) -> tuple[Any, Any]:
    """(transformers config at the family's common size, processor with the tiny tokenizer) for ``name``."""
    import transformers as T

    data = fm.fixture(FIXTURES[name])
    _, tiny = fm.BUILDERS[name]()  # the family's tokenizer, template and processor class
    tok = getattr(tiny, "tokenizer", tiny)
    if name in fm.TEXT_MODELS:
        return T.AutoConfig.for_model(**data), tok
    image = _image_processor(name, data)
    processor = _processor(name, tiny, image, tok, data)
    data.update(_token_ids(name, tok))
    return T.AutoConfig.for_model(**data), processor


def _processor(name: str, tiny: Any, image: Any, tok: Any, data: dict[str, Any]) -> Any:
    cls = type(tiny)
    template = tiny.chat_template
    vision = data.get("vision_config") or {}
    if name in ("llava", "llava_next"):
        return cls(image_processor=image, tokenizer=tok, patch_size=int(vision.get("patch_size", 14)),
                   vision_feature_select_strategy=data.get("vision_feature_select_strategy", "default"),
                   num_additional_image_tokens=1, chat_template=template)
    if name == "llava_onevision":
        tokens = (int(vision["image_size"]) // int(vision["patch_size"])) ** 2
        return cls(image_processor=image, tokenizer=tok, num_image_tokens=tokens, chat_template=template,
                   vision_feature_select_strategy=data.get("vision_feature_select_strategy", "full"))
    if name == "gemma3":
        return cls(image_processor=image, tokenizer=tok, image_seq_length=int(data.get("mm_tokens_per_image", 256)),
                   chat_template=template)
    if name in ("smolvlm", "idefics3"):
        per_tile = (int(vision["image_size"]) // int(vision["patch_size"])) ** 2 // int(data["scale_factor"]) ** 2
        return cls(image_processor=image, tokenizer=tok, image_seq_len=per_tile, chat_template=template)
    if name == "paligemma":
        return cls(image_processor=image, tokenizer=tok)
    return cls(image_processor=image, tokenizer=tok, chat_template=template)


def _token_ids(name: str, tok: Any) -> dict[str, int]:
    """The config's special token ids, set to the tiny tokenizer's (the real vocabulary size stays)."""
    def i(token: str) -> int:
        return int(tok.convert_tokens_to_ids(token))

    if name in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        return {"image_token_id": i("<|image_pad|>"), "video_token_id": i("<|video_pad|>"),
                "vision_start_token_id": i("<|vision_start|>"), "vision_end_token_id": i("<|vision_end|>")}
    if name == "llava_onevision":
        return {"image_token_index": i("<image>"), "video_token_index": i("<video>")}
    if name == "gemma3":
        return {"boi_token_index": i("<start_of_image>"), "eoi_token_index": i("<end_of_image>"),
                "image_token_index": i("<image_soft_token>")}
    if name in ("smolvlm", "idefics3"):
        return {"image_token_id": i("<image>")}
    if name == "mllama":
        return {"image_token_index": i("<|image|>")}
    return {"image_token_index": i("<image>")}

