"""Tiny random models of every family, built offline from configs in about a second each: a byte-level BPE
tokenizer with the family's special tokens and chat template, the family's real processor (PIL image processor,
no video part), and its real model class with a few small layers. ``bench/gpu_families.py`` builds the same
processors around the families' real shapes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import family_templates as tpl

ROOT = Path(__file__).resolve().parent
CONFIGS = ROOT / "fixtures" / "model_configs"
CORPUS = [
    "What colour is the shape in the picture? The shape is red. The shape is green. The shape is blue.",
    "Describe the image. A red circle on a white background. A blue square on a dark background. Compare them.",
    "User Assistant system model user assistant. Yes. No. It is a circle. It is a square. Which one is larger?",
    "the quick brown fox jumps over the lazy dog 0123456789 , . ! ? ' \" ( ) : ; - + = / * % & # \n",
]
FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava", "llava_next", "llava_onevision", "gemma3", "smolvlm",
            "idefics3", "paligemma", "mllama")
TEXT_MODELS = ("llama", "qwen2", "qwen3", "gemma3_text", "smollm2")


def tokenizer(special: list[str], template: str | None, **kwargs: Any) -> Any:
    """A byte-level BPE trained here on a few sentences, with these special tokens first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=len(special) + 320, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, chat_template=template, **kwargs)


def text_config(vocab: int, tok: Any, **overrides: Any) -> dict[str, Any]:
    config = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": vocab, "max_position_embeddings": 4096,
              "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    config.update(overrides)
    return config


def tower(**overrides: Any) -> dict[str, Any]:
    config = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    config.update(overrides)
    return config


def ids(tok: Any, *tokens: str) -> list[int]:
    return [tok.convert_tokens_to_ids(t) for t in tokens]


def no_video(cls_name: str) -> type:
    import transformers

    from core.models.processors import without_video

    return without_video(getattr(transformers, cls_name))


MROPE = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}


def qwen(kind: str) -> tuple[Any, Any]:
    import transformers as T

    tok = tokenizer(tpl.QWEN_TOKENS, tpl.QWEN, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    patch = 16 if kind == "qwen3_vl" else 14
    image = T.Qwen2VLImageProcessorPil(size={"shortest_edge": (2 * patch) ** 2, "longest_edge": 16 * (2 * patch) ** 2},
                                       patch_size=patch, merge_size=2)
    token_ids = dict(zip(("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"),
                         ids(tok, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"),
                         strict=True))
    if kind == "qwen2_vl":
        vision = dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14)
        config = T.Qwen2VLConfig(text_config=text_config(len(tok), tok, rope_parameters=MROPE),
                                 vision_config=vision, **token_ids)
    elif kind == "qwen2_5_vl":
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, patch_size=14,
                      window_size=56, fullatt_block_indexes=[1])
        config = T.Qwen2_5_VLConfig(text_config=text_config(len(tok), tok, rope_parameters=MROPE),
                                    vision_config=vision, **token_ids)
    else:
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, patch_size=16,
                      num_position_embeddings=64, deepstack_visual_indexes=[1])
        text = text_config(len(tok), tok, head_dim=16, rope_parameters={**MROPE, "mrope_interleaved": True})
        config = T.Qwen3VLConfig(text_config=text, vision_config=vision, **token_ids)
    processor_name = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor",
                      "qwen3_vl": "Qwen3VLProcessor"}[kind]
    return config, no_video(processor_name)(image_processor=image, tokenizer=tok, chat_template=tpl.QWEN)


def llava() -> tuple[Any, Any]:
    import transformers as T

    tok = tokenizer(["<pad>", "<s>", "</s>", "<image>"], tpl.LLAVA, bos_token="<s>", eos_token="</s>",
                    pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})
    image = T.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = T.LlavaConfig(vision_config={"model_type": "clip_vision_model", **tower(projection_dim=32)},
                           text_config={"model_type": "llama", **text_config(len(tok), tok)},
                           image_token_id=ids(tok, "<image>")[0], vision_feature_layer=-1)
    processor = T.LlavaProcessor(image_processor=image, tokenizer=tok, patch_size=8, chat_template=tpl.LLAVA,
                                 vision_feature_select_strategy="default", num_additional_image_tokens=1)
    return config, processor


PINPOINTS = [[32, 64], [64, 32], [64, 64]]


def llava_next() -> tuple[Any, Any]:
    import transformers as T

    tok = tokenizer(["<pad>", "<s>", "</s>", "<image>"], tpl.MISTRAL_IMAGE, bos_token="<s>", eos_token="</s>",
                    pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})
    image = T.LlavaNextImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                         image_grid_pinpoints=PINPOINTS)
    config = T.LlavaNextConfig(vision_config={"model_type": "clip_vision_model", **tower(projection_dim=32)},
                               text_config={"model_type": "mistral", **text_config(len(tok), tok)},
                               image_token_index=ids(tok, "<image>")[0], image_grid_pinpoints=PINPOINTS,
                               vision_feature_layer=-1)
    processor = T.LlavaNextProcessor(image_processor=image, tokenizer=tok, patch_size=8,
                                     chat_template=tpl.MISTRAL_IMAGE, vision_feature_select_strategy="default",
                                     num_additional_image_tokens=1)
    return config, processor


def llava_onevision() -> tuple[Any, Any]:
    import transformers as T

    tok = tokenizer([*tpl.QWEN_TOKENS, "<image>", "<video>"], tpl.CHATML_IMAGE, eos_token="<|im_end|>",
                    pad_token="<|endoftext|>",
                    extra_special_tokens={"image_token": "<image>", "video_token": "<video>"})
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    image = T.LlavaOnevisionImageProcessorPil(size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints)
    config = T.LlavaOnevisionConfig(vision_config={"model_type": "siglip_vision_model", **tower()},
                                    text_config={"model_type": "qwen2", **text_config(len(tok), tok)},
                                    image_token_index=ids(tok, "<image>")[0], video_token_index=ids(tok, "<video>")[0],
                                    image_grid_pinpoints=pinpoints, vision_feature_layer=-1,
                                    vision_feature_select_strategy="full")
    processor = no_video("LlavaOnevisionProcessor")(image_processor=image, tokenizer=tok, num_image_tokens=16,
                                                    vision_feature_select_strategy="full",
                                                    chat_template=tpl.CHATML_IMAGE)
    return config, processor


def gemma3() -> tuple[Any, Any]:
    import transformers as T

    tok = tokenizer(tpl.GEMMA_TOKENS, tpl.GEMMA, bos_token="<bos>", eos_token="<end_of_turn>", pad_token="<pad>",
                    extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                          "image_token": "<image_soft_token>"})
    image = T.Gemma3ImageProcessorPil(size={"height": 32, "width": 32}, pan_and_scan_min_crop_size=32,
                                      pan_and_scan_max_num_crops=2, pan_and_scan_min_ratio_to_activate=1.2)
    text = {"model_type": "gemma3_text", **text_config(len(tok), tok, head_dim=16, query_pre_attn_scalar=16,
                                                        sliding_window=64)}
    boi, eoi, soft = ids(tok, "<start_of_image>", "<end_of_image>", "<image_soft_token>")
    config = T.Gemma3Config(vision_config={"model_type": "siglip_vision_model", **tower()}, text_config=text,
                            mm_tokens_per_image=4, boi_token_index=boi, eoi_token_index=eoi, image_token_index=soft)
    return config, T.Gemma3Processor(image_processor=image, tokenizer=tok, image_seq_length=4, chat_template=tpl.GEMMA)


def idefics(kind: str) -> tuple[Any, Any]:
    import transformers as T

    tok = tokenizer(tpl.IDEFICS_TOKENS, tpl.IDEFICS, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                    pad_token="<|endoftext|>",
                    extra_special_tokens={"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
                                          "global_image_token": "<global-img>",
                                          "end_of_utterance_token": "<end_of_utterance>"})
    sizes = {"size": {"longest_edge": 64}, "max_image_size": {"longest_edge": 32}}
    common = dict(vision_config=tower(), text_config={"model_type": "llama", **text_config(len(tok), tok)},
                  image_token_id=ids(tok, "<image>")[0], scale_factor=2)
    if kind == "smolvlm":
        config, image = T.SmolVLMConfig(**common), T.SmolVLMImageProcessorPil(**sizes)
        processor_cls = no_video("SmolVLMProcessor")
    else:
        config, image = T.Idefics3Config(**common), T.Idefics3ImageProcessorPil(**sizes)
        processor_cls = T.Idefics3Processor
    return config, processor_cls(image_processor=image, tokenizer=tok, image_seq_len=4, chat_template=tpl.IDEFICS)


def paligemma() -> tuple[Any, Any]:
    import transformers as T

    tok = tokenizer(["<pad>", "<eos>", "<bos>", "<image>"], None, bos_token="<bos>", eos_token="<eos>",
                    pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})
    image = T.SiglipImageProcessorPil(size={"height": 32, "width": 32})
    image.image_seq_length = 16
    processor = T.PaliGemmaProcessor(image_processor=image, tokenizer=tok)  # adds PaliGemma's location tokens
    text = {"model_type": "gemma2", **text_config(len(tok), tok, head_dim=16, query_pre_attn_scalar=16,
                                                   sliding_window=64)}
    config = T.PaliGemmaConfig(vision_config={"model_type": "siglip_vision_model", **tower()}, text_config=text,
                               image_token_index=ids(tok, "<image>")[0], projection_dim=64, hidden_size=64,
                               vocab_size=len(tok))
    return config, processor


def mllama() -> tuple[Any, Any]:
    import transformers as T

    tok = tokenizer(tpl.LLAMA3_TOKENS, tpl.LLAMA3, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                    pad_token="<|finetune_right_pad_id|>", extra_special_tokens={"image_token": "<|image|>"})
    image = T.MllamaImageProcessorPil(size={"height": 32, "width": 32}, max_image_tiles=2)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_global_layers=1, attention_heads=2,
                  image_size=32, patch_size=8, max_num_tiles=2, vision_output_dim=96,
                  intermediate_layers_indices=[0, 1], supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]])
    text = text_config(len(tok), tok, num_hidden_layers=3, cross_attention_layers=[1])
    config = T.MllamaConfig(vision_config=vision, text_config=text, image_token_index=ids(tok, "<|image|>")[0])
    return config, T.MllamaProcessor(image_processor=image, tokenizer=tok, chat_template=tpl.LLAMA3)


def text_model(kind: str) -> tuple[Any, Any]:
    import transformers as T

    if kind == "gemma3_text":
        tok = tokenizer(tpl.GEMMA_TOKENS[:5], tpl.GEMMA, bos_token="<bos>", eos_token="<end_of_turn>",
                        pad_token="<pad>")
        return T.Gemma3TextConfig(**text_config(len(tok), tok, head_dim=16, query_pre_attn_scalar=16,
                                                sliding_window=64)), tok
    if kind == "llama":
        tok = tokenizer(tpl.LLAMA3_TOKENS, tpl.LLAMA3, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                        pad_token="<|finetune_right_pad_id|>")
        return T.LlamaConfig(**text_config(len(tok), tok)), tok
    tok = tokenizer(tpl.QWEN_TOKENS[:3], tpl.CHATML, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    if kind == "smollm2":
        return T.LlamaConfig(**text_config(len(tok), tok, tie_word_embeddings=True)), tok
    cls = T.Qwen3Config if kind == "qwen3" else T.Qwen2Config
    return cls(**text_config(len(tok), tok, **({"head_dim": 16} if kind == "qwen3" else {}))), tok


BUILDERS: dict[str, Callable[[], tuple[Any, Any]]] = {
    "qwen2_vl": lambda: qwen("qwen2_vl"), "qwen2_5_vl": lambda: qwen("qwen2_5_vl"),
    "qwen3_vl": lambda: qwen("qwen3_vl"),
    "llava": llava, "llava_next": llava_next, "llava_onevision": llava_onevision, "gemma3": gemma3,
    "smolvlm": lambda: idefics("smolvlm"), "idefics3": lambda: idefics("idefics3"), "paligemma": paligemma,
    "mllama": mllama, **{k: (lambda k=k: text_model(k)) for k in TEXT_MODELS},
}


def build(name: str, folder: Path, seed: int = 0) -> Path:
    """Build the tiny model ``name`` with random weights into ``folder`` (config, weights, processor)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    config, processor = BUILDERS[name]()
    torch.manual_seed(seed)
    auto = AutoModelForCausalLM if name in TEXT_MODELS else AutoModelForImageTextToText
    model = auto.from_config(config)
    tok = getattr(processor, "tokenizer", processor)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def fixture(name: str) -> dict[str, Any]:
    return json.loads((CONFIGS / f"{name}.json").read_text())
