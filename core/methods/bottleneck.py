"""Houlsby bottleneck adapter modules: attach them to a model's decoder layers, save and re-attach their weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

WEIGHTS_FILE = "bottleneck_adapter.safetensors"
MANIFEST_FILE = "bottleneck_adapter.json"
FORMAT = "studio-bottleneck-adapter"
ATTENTION_NAMES = ("self_attn", "attention", "attn", "self_attention", "cross_attn")  # mllama: cross_attn
MLP_NAMES = ("mlp", "feed_forward", "ffn")
PLACES = {"attn": ATTENTION_NAMES, "mlp": MLP_NAMES}
INIT_STD = 1e-2  # Houlsby et al.: near-identity start from small truncated-normal weights and zero biases


class Bottleneck(nn.Module):
    """h + up(gelu(down(h))), initialised close to the identity."""

    def __init__(self, hidden: int, size: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.down = nn.Linear(hidden, size, dtype=dtype)
        self.up = nn.Linear(size, hidden, dtype=dtype)
        self.act = nn.GELU()
        for linear in (self.down, self.up):
            nn.init.trunc_normal_(linear.weight, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD)
            nn.init.zeros_(linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.act(self.down(hidden)))


def _hook(adapter: Bottleneck) -> Any:
    def apply(_module: nn.Module, _args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (adapter(output[0]), *output[1:])
        return adapter(output)

    return apply


def attach(model: Any, size: int) -> list[str]:
    """Add an adapter after the attention and the MLP of every decoder layer; returns the adapted places."""
    from core.models.parts import decoder_layers

    places = []
    hidden = _hidden_size(model)
    for layer_name, layer in decoder_layers(model):
        param = next(layer.parameters())
        for place, candidates in PLACES.items():
            inner = next((getattr(layer, n) for n in candidates if isinstance(getattr(layer, n, None), nn.Module)),
                         None)
            if inner is None:
                raise ValueError(f"{layer_name} has no attention/MLP submodule named {', '.join(candidates)}")
            adapter = Bottleneck(hidden, size, dtype=param.dtype).to(param.device)
            layer.add_module(f"bottleneck_{place}", adapter)
            inner.register_forward_hook(_hook(adapter))
            places.append(f"{layer_name}.bottleneck_{place}")
    return places


def _hidden_size(model: Any) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(config.hidden_size)


def adapter_state(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if ".bottleneck_" in n}


def attach_saved(model: Any, folder: Path) -> Any:
    """Attach the adapters saved in ``folder`` to a freshly loaded base model."""
    from safetensors.torch import load_file

    manifest = json.loads((Path(folder) / MANIFEST_FILE).read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{folder} does not hold a bottleneck adapter")
    attach(model, int(manifest["size"]))
    saved = load_file(str(Path(folder) / WEIGHTS_FILE))
    params = dict(model.named_parameters())
    missing = [n for n in adapter_state(model) if n not in saved]
    if missing or any(n not in params for n in saved):
        raise ValueError(f"the adapter in {folder} does not fit this model (e.g. {(missing or list(saved))[0]})")
    with torch.no_grad():
        for name, tensor in saved.items():
            params[name].copy_(tensor.to(params[name].dtype))
    return model


def save(model: Any, out_dir: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """Write the adapters' weights (from the model, or from ``state_dict`` when given whole) and a manifest."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = adapter_state(model) if state_dict is None else \
        {n: t.contiguous() for n, t in state_dict.items() if ".bottleneck_" in n}
    save_file(state, str(out_dir / WEIGHTS_FILE))
    size = next(t.shape[0] for n, t in state.items() if n.endswith("down.weight"))
    manifest = {"format": FORMAT, "version": 1, "size": int(size), "hidden_size": _hidden_size(model),
                "places": sorted(PLACES), "nonlinearity": "gelu", "adapters": len(state) // 4,
                "base_model": str(getattr(model.config, "_name_or_path", "") or ""),
                "load_with": "core.methods.bottleneck.attach_saved(model, folder)"}
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
