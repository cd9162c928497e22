"""A model's shape for memory estimates, read from its config.json (dict, PretrainedConfig, folder or hub id)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# transformers' defaults for keys a config.json may leave out (LLaVA-1.5's text_config lists only a few keys).
TEXT_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
              "num_attention_heads": 32, "tie_word_embeddings": False},
    "mistral": {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                "num_attention_heads": 32, "num_key_value_heads": 8, "tie_word_embeddings": False},
    "qwen2": {"vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32,
              "num_attention_heads": 32, "num_key_value_heads": 32, "tie_word_embeddings": False,
              "attention_bias": True},
}
VISION_DEFAULTS: dict[str, dict[str, Any]] = {
    "clip_vision_model": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                          "num_attention_heads": 12, "image_size": 224, "patch_size": 32, "num_channels": 3},
    "siglip_vision_model": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                            "num_attention_heads": 12, "image_size": 224, "patch_size": 16, "num_channels": 3},
    "dinov2": {"hidden_size": 768, "mlp_ratio": 4, "num_hidden_layers": 12, "num_attention_heads": 12,
               "image_size": 224, "patch_size": 14, "num_channels": 3},
}
# LlavaConfig's vision tower when config.json gives none: CLIP ViT-L/14 at 336 px.
LLAVA_VISION = {"model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096,
                "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 336, "patch_size": 14}
# Vision towers that prepend a class token to the patch tokens.
CLS_TOWERS = ("clip_vision_model", "dinov2")
# MLPs with two matrices (up, down) rather than Llama's three (gate, up, down).
PLAIN_MLP_TYPES = ("gpt2", "gpt_neox", "phi", "opt", "falcon", "gpt_bigcode", "starcoder2", "bloom")
# Alternative key names some configs use.
ALIASES = {"hidden_size": ("n_embd", "d_model"), "num_hidden_layers": ("n_layer", "num_layers"),
           "num_attention_heads": ("n_head",), "intermediate_size": ("n_inner", "ffn_dim")}


@dataclass(frozen=True)
class TextArch:
    """A decoder-only language model (Llama-style unless ``gated_mlp`` is False)."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool = False
    gated_mlp: bool = True
    attention_bias: bool = False
    model_type: str = "llama"

    @property
    def q_width(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.num_kv_heads * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each decoder layer's linear layers, by short name."""
        h, i = self.hidden_size, self.intermediate_size
        shapes = {"q": (h, self.q_width), "k": (h, self.kv_width), "v": (h, self.kv_width), "o": (self.q_width, h)}
        if self.gated_mlp:
            shapes.update({"gate": (h, i), "up": (h, i), "down": (i, h)})
        else:
            shapes.update({"up": (h, i), "down": (i, h)})
        return shapes

    def layer_linear_params(self) -> int:
        return sum(a * b for a, b in self.linear_shapes().values())

    def layer_other_params(self) -> int:
        """Norm weights and biases of one decoder layer."""
        bias = (self.q_width + 2 * self.kv_width) if self.attention_bias else 0
        return 2 * self.hidden_size + bias

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def head_params(self) -> int:
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    def total_params(self) -> int:
        layer = self.layer_linear_params() + self.layer_other_params()
        return self.embedding_params() + self.num_layers * layer + self.hidden_size + self.head_params()


@dataclass(frozen=True)
class VisionArch:
    """A ViT image encoder (CLIP, SigLIP, DINOv2) and the LLaVA projector that feeds its features to the LM."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    image_size: int
    patch_size: int
    num_channels: int = 3
    class_token: bool = True
    image_tokens: int = 576  # tokens each image adds to the language model's sequence
    projector_in: int = 1024
    projector_out: int = 4096
    model_type: str = "clip_vision_model"

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def tower_tokens(self) -> int:
        """Tokens inside the tower per image (patches plus the class token)."""
        return self.patches + (1 if self.class_token else 0)

    def layer_params(self) -> int:
        h, i = self.hidden_size, self.intermediate_size
        return 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h

    def linear_params(self) -> int:
        return self.num_layers * (4 * self.hidden_size ** 2 + 2 * self.hidden_size * self.intermediate_size)

    def total_params(self) -> int:
        h = self.hidden_size
        patch_embed = self.num_channels * self.patch_size ** 2 * h
        embeddings = patch_embed + self.tower_tokens * h + (h if self.class_token else 0)
        return embeddings + self.num_layers * self.layer_params() + 4 * h  # pre- and post-layernorm

    def projector_params(self) -> int:
        """LLaVA's two-layer MLP projector with biases: in -> out -> out."""
        n_in, n_out = self.projector_in, self.projector_out
        return n_in * n_out + n_out + n_out ** 2 + n_out


@dataclass(frozen=True)
class Architecture:
    """What the estimator needs to know about a model: its language model and, for a VLM, its vision side."""

    text: TextArch
    vision: VisionArch | None = None
    name: str = ""

    def total_params(self) -> int:
        vision = self.vision.total_params() + self.vision.projector_params() if self.vision else 0
        return self.text.total_params() + vision


def _get(d: dict[str, Any], key: str, defaults: dict[str, Any], fallback: Any = None) -> Any:
    for name in (key, *ALIASES.get(key, ())):
        if d.get(name) is not None:
            return d[name]
    return defaults.get(key, fallback)


def text_arch(d: dict[str, Any]) -> TextArch:
    """A TextArch from a causal LM's config dict (missing keys take transformers' defaults for its model type)."""
    model_type = str(d.get("model_type") or "llama")
    defaults = TEXT_DEFAULTS.get(model_type, TEXT_DEFAULTS["llama"])
    hidden = int(_get(d, "hidden_size", defaults))
    heads = int(_get(d, "num_attention_heads", defaults))
    kv_heads = int(_get(d, "num_key_value_heads", defaults, heads))
    head_dim = int(d.get("head_dim") or hidden // heads)
    gated = model_type not in PLAIN_MLP_TYPES
    intermediate = _get(d, "intermediate_size", defaults) or 4 * hidden
    return TextArch(
        hidden_size=hidden, intermediate_size=int(intermediate), num_layers=int(_get(d, "num_hidden_layers", defaults)),
        num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, vocab_size=int(_get(d, "vocab_size", defaults)),
        tie_word_embeddings=bool(_get(d, "tie_word_embeddings", defaults, False)), gated_mlp=gated,
        attention_bias=bool(_get(d, "attention_bias", defaults, False)), model_type=model_type,
    )


def vision_arch(d: dict[str, Any], text_hidden: int, select_strategy: str = "default",
                image_seq_length: int | None = None) -> VisionArch:
    """A VisionArch from a vision tower's config dict and the LLaVA feature-selection strategy."""
    model_type = str(d.get("model_type") or "clip_vision_model")
    defaults = VISION_DEFAULTS.get(model_type, VISION_DEFAULTS["clip_vision_model"])
    hidden = int(_get(d, "hidden_size", defaults))
    intermediate = _get(d, "intermediate_size", defaults) or int(hidden * float(_get(d, "mlp_ratio", defaults, 4)))
    image, patch = int(_get(d, "image_size", defaults)), int(_get(d, "patch_size", defaults))
    cls = model_type in CLS_TOWERS
    tokens = (image // patch) ** 2 + (1 if cls else 0)
    if select_strategy == "default" and cls:
        tokens -= 1  # LLaVA's "default" strategy drops the class token
    return VisionArch(
        hidden_size=hidden, intermediate_size=int(intermediate), num_layers=int(_get(d, "num_hidden_layers", defaults)),
        num_heads=int(_get(d, "num_attention_heads", defaults)), image_size=image, patch_size=patch,
        num_channels=int(_get(d, "num_channels", defaults, 3)), class_token=cls,
        image_tokens=tokens, projector_in=hidden, projector_out=text_hidden, model_type=model_type,
    )


def architecture_from_dict(d: dict[str, Any], name: str = "") -> Architecture:
    """Parse a config.json dict: a LLaVA-style VLM (``text_config`` + ``vision_config``) or a plain causal LM."""
    if "text_config" in d or "vision_config" in d:
        text = text_arch(dict(d.get("text_config") or {"model_type": "llama"}))
        vision_dict = dict(d.get("vision_config") or LLAVA_VISION)
        strategy = str(d.get("vision_feature_select_strategy") or "default")
        vision = vision_arch(vision_dict, text.hidden_size, strategy, d.get("image_seq_length"))
        return Architecture(text=text, vision=vision, name=name or str(d.get("_name_or_path", "")))
    return Architecture(text=text_arch(d), name=name or str(d.get("_name_or_path", "")))


def read_architecture(source: Any) -> Architecture:
    """An Architecture from a config dict, a ``PretrainedConfig``, an Architecture, or a folder / hub id.

    Folders and hub ids go through ``transformers.AutoConfig`` (a hub id downloads config.json only, no weights).
    """
    if isinstance(source, Architecture):
        return source
    if isinstance(source, dict):
        return architecture_from_dict(source)
    if hasattr(source, "to_dict"):
        return architecture_from_dict(source.to_dict(), name=str(getattr(source, "_name_or_path", "")))
    spec = str(source).strip()
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".json":
        import json

        return architecture_from_dict(json.loads(path.read_text(encoding="utf-8")), name=path.parent.name)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(path) if path.is_dir() else spec)
    return architecture_from_dict(config.to_dict(), name=spec)
