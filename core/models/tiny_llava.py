"""Builds 'tiny-random-llava' offline in seconds: a tiny CLIP tower, a tiny Llama and a BPE tokenizer trained here."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

BUILD_VERSION = "1"
IMAGE_SIZE = 32
PATCH_SIZE = 8
SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<image>"]

# Renders string content or a list of {type: text|image} parts; each turn ends with <|end|>, the EOS token,
# so a model trained on assistant turns learns to stop.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>' }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

_CORPUS = [
    "What colour is the shape in the picture? The shape is red. The shape is green. The shape is blue.",
    "It is yellow. It is purple. It is orange. It is white. It is black. It is a circle. It is a square.",
    "Describe the image. A red circle on a white background. A blue square on a dark background.",
    "What shape is this? This is a triangle. How many shapes are there? There is one shape. There are two.",
    "Hello! How can I help you today? Thank you. Yes. No. Maybe. I see a picture of a cat and a dog.",
    "the quick brown fox jumps over the lazy dog 0123456789 , . ! ? ' \" ( ) : ; - + = / * % & #",
]


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=640,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|bos|>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        extra_special_tokens={"image_token": "<image>"},
        chat_template=CHAT_TEMPLATE,
    )


def _build_into(folder: Path) -> None:
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    try:  # transformers 5 names the PIL backend explicitly; without torchvision it is the one that runs
        from transformers import CLIPImageProcessorPil as CLIPImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor

    tokenizer = _train_tokenizer()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped again by the "default" strategy
        chat_template=CHAT_TEMPLATE,
    )
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, projection_dim=32,
    )
    text = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=len(tokenizer), max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / "BUILD_VERSION").write_text(BUILD_VERSION)


_BUILD_LOCK = threading.Lock()


def ensure_tiny_llava(models_dir: Path) -> Path:
    """Return the folder of the tiny model, building it first if it is missing or from an older build.

    Threads of one process build it one at a time (the page's load-time calls can ask together, and transformers'
    lazy imports are not safe to race); separate processes are kept apart by the atomic rename below.
    """
    with _BUILD_LOCK:
        return _ensure(Path(models_dir))


def _ensure(models_dir: Path) -> Path:
    target = models_dir / "tiny-random-llava"
    marker = target / "BUILD_VERSION"
    if marker.is_file() and marker.read_text().strip() == BUILD_VERSION:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-llava-", dir=target.parent))
    try:
        _build_into(staging)
        if target.exists():
            if marker.is_file() and marker.read_text().strip() == BUILD_VERSION:
                return target  # another process finished first
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
