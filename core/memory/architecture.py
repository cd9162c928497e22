"""A model's shape for memory estimates, read from its config.json (dict, PretrainedConfig, folder or hub id)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.models.families import Family, ImageSettings, family_for
from core.models.families.base import siglip_head

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
# The language model inside each VLM type, for configs that keep its keys at the top level (older hub files).
TEXT_TYPES = {"qwen2_vl": "qwen2", "qwen2_5_vl": "qwen2", "qwen3_vl": "qwen3", "mllama": "mllama_text_model"}
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
    tower_tokens_per_image: int = 0  # tokens the tower encodes per image, all tiles (0: one tile's patches + CLS)
    projector_count: int = 0  # the projector's parameters (0: LLaVA's two-layer MLP)
    tiles: int = 1  # tiles or crops per image (any-res, image splitting, pan and scan, mllama)
    learned_positions: bool = True  # a learned position embedding per patch (Qwen2/2.5-VL use rotary ones)
    mlp_matrices: int = 2  # 3 for a gated (SwiGLU) MLP (Qwen2.5-VL)
    extra_params: int = 0  # beyond the layers: SigLIP's pooling head, mllama's tile embeddings

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def tower_tokens(self) -> int:
        """Tokens inside the tower per image (every tile's patches plus class tokens)."""
        return self.tower_tokens_per_image or self.patches + (1 if self.class_token else 0)

    def layer_params(self) -> int:
        h, i, m = self.hidden_size, self.intermediate_size, self.mlp_matrices
        return 4 * (h * h + h) + (m - 1) * (h * i + i) + (i * h + h) + 4 * h

    def linear_params(self) -> int:
        h = self.hidden_size
        return self.num_layers * (4 * h ** 2 + self.mlp_matrices * h * self.intermediate_size)

    def total_params(self) -> int:
        h = self.hidden_size
        patch_embed = self.num_channels * self.patch_size ** 2 * h
        positions = (self.patches + (1 if self.class_token else 0)) * h if self.learned_positions else 0
        embeddings = patch_embed + positions + (h if self.class_token else 0)
        return embeddings + self.num_layers * self.layer_params() + 4 * h + self.extra_params  # with the layernorms

    def projector_params(self) -> int:
        """The family's count, or LLaVA's two-layer MLP projector with biases: in -> out -> out."""
        if self.projector_count:
            return self.projector_count
        n_in, n_out = self.projector_in, self.projector_out
        return n_in * n_out + n_out + n_out ** 2 + n_out


@dataclass(frozen=True)
class Architecture:
    """What the estimator needs to know about a model: its language model and, for a VLM, its vision side."""

    text: TextArch
    vision: VisionArch | None = None
    name: str = ""
    family: str = ""
    # The config.json and preprocessor settings it was read from, to read the vision side again at other
    # image settings.
    source: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    preprocessor: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def total_params(self) -> int:
        vision = self.vision.total_params() + self.vision.projector_params() if self.vision else 0
        return self.text.total_params() + vision

    def for_images(self, settings: ImageSettings) -> Architecture:
        """The same model with the vision side counted at these image settings."""
        if self.source is None or self.vision is None or settings == ImageSettings():
            return self
        return architecture_from_dict(self.source, self.name, settings, self.preprocessor)

    def parts(self) -> dict[str, int]:
        """Parameters per part: vision tower, projector, language model (embeddings and layers), head."""
        out = {}
        if self.vision:
            out["vision"] = self.vision.total_params()
            out["projector"] = self.vision.projector_params()
        out["language"] = self.text.total_params() - self.text.head_params()
        if self.text.head_params():
            out["head"] = self.text.head_params()
        return out


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
    head = siglip_head(hidden, int(intermediate)) if model_type == "siglip_vision_model" and d.get(
        "vision_use_head", True) else 0
    return VisionArch(
        hidden_size=hidden, intermediate_size=int(intermediate), num_layers=int(_get(d, "num_hidden_layers", defaults)),
        num_heads=int(_get(d, "num_attention_heads", defaults)), image_size=image, patch_size=patch,
        num_channels=int(_get(d, "num_channels", defaults, 3)), class_token=cls,
        image_tokens=tokens, projector_in=hidden, projector_out=text_hidden, model_type=model_type, extra_params=head,
    )


def text_dict_of(d: dict[str, Any]) -> dict[str, Any]:
    """A VLM config's language-model keys: its text_config, or the top-level keys where older files keep them;
    tie_word_embeddings from the top level when the text config leaves it out."""
    text = dict(d.get("text_config") or {})
    if not text and "hidden_size" in d and "num_hidden_layers" in d:
        text = {k: v for k, v in d.items() if k != "vision_config"}
        text["model_type"] = TEXT_TYPES.get(str(d.get("model_type")), "llama")
    text = text or {"model_type": "llama"}
    if "tie_word_embeddings" not in text and "tie_word_embeddings" in d:
        text["tie_word_embeddings"] = d["tie_word_embeddings"]
    return text


def vision_of(d: dict[str, Any], family: Family, text_hidden: int, settings: ImageSettings,
              preprocessor: dict[str, Any]) -> VisionArch:
    """The vision side by the family's reading (from the LLaVA reading of the same config)."""
    strategy = str(d.get("vision_feature_select_strategy") or "default")
    base = vision_arch(dict(d.get("vision_config") or LLAVA_VISION), text_hidden, strategy, d.get("image_seq_length"))
    shape = family.vision_shape(d, text_hidden, preprocessor, settings, dataclasses.asdict(base))
    renamed = {"tower_tokens": "tower_tokens_per_image", "projector": "projector_count"}
    known = {f.name for f in dataclasses.fields(VisionArch)}
    return VisionArch(**{renamed.get(k, k): v for k, v in shape.items() if renamed.get(k, k) in known})


def architecture_from_dict(d: dict[str, Any], name: str = "", settings: ImageSettings | None = None,
                           preprocessor: dict[str, Any] | None = None) -> Architecture:
    """Parse a config.json dict: a VLM (``text_config`` + ``vision_config``, read by its family at the image
    settings) or a plain causal LM."""
    name = name or str(d.get("_name_or_path", ""))
    if "text_config" in d or "vision_config" in d:
        family = family_for({**d, "vision_config": d.get("vision_config") or {}})
        text = text_arch(text_dict_of(d))
        vision = vision_of(d, family, text.hidden_size, settings or ImageSettings(), preprocessor or {})
        return Architecture(text=text, vision=vision, name=name, family=family.name, source=d,
                            preprocessor=preprocessor)
    return Architecture(text=text_arch(d), name=name, family="text")


def preprocessor_of(folder: Path) -> dict[str, Any]:
    """A model folder's image-processor settings (preprocessor_config.json, or processor_config.json's
    image_processor), or {} when it has none."""
    import json

    for file, key in (("preprocessor_config.json", None), ("processor_config.json", "image_processor")):
        path = folder / file
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            found = data.get(key) if key else data
            if isinstance(found, dict):
                return found
    return {}


def read_architecture(source: Any, settings: ImageSettings | None = None) -> Architecture:
    """An Architecture from a config dict, a ``PretrainedConfig``, an Architecture, or a folder / hub id, with the
    vision side at the image settings (the model's own without them).

    Folders and hub ids go through ``transformers.AutoConfig`` (a hub id downloads config.json only, no weights).
    """
    if isinstance(source, Architecture):
        return source.for_images(settings) if settings else source
    if isinstance(source, dict):
        return architecture_from_dict(source, settings=settings)
    if hasattr(source, "to_dict"):
        return architecture_from_dict(source.to_dict(), name=str(getattr(source, "_name_or_path", "")),
                                      settings=settings)
    spec = str(source).strip()
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".json":
        import json

        return architecture_from_dict(json.loads(path.read_text(encoding="utf-8")), name=path.parent.name,
                                      settings=settings, preprocessor=preprocessor_of(path.parent))
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(path) if path.is_dir() else spec)
    return architecture_from_dict(config.to_dict(), name=spec, settings=settings,
                                  preprocessor=preprocessor_of(path) if path.is_dir() else {})
