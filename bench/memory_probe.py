"""Checks the estimator's activation formulas against what PyTorch really keeps, on CPU, for small Llama models.

For each case it builds a randomly initialised Llama with transformers (+ peft / bitsandbytes), runs training steps
and measures (1) the bytes autograd saves for backward during the forward pass (``saved_tensors_hooks``, unique
storages, parameters excluded) and (2) the peak of live tensor bytes over a whole step (a dispatch mode that tracks
every storage). It prints both beside the estimate for the same shapes. CPU kernels differ from CUDA in one known
way, which the estimate is told about: dropout keeps its mask in the input's dtype on CPU (a bool on CUDA).

    python bench/memory_probe.py            # all cases, a table
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.memory import MemoryInputs, estimate  # noqa: E402
from core.memory.architecture import Architecture, TextArch, VisionArch  # noqa: E402
from core.memory.estimate import Estimate  # noqa: E402


@dataclass
class Case:
    name: str
    method: str = "lora"  # lora, full
    precision: str = "pure_bf16"  # pure_bf16 (bf16 weights), bf16 (fp32 weights + autocast), fp32
    bits: int = 16
    dropout: float = 0.05
    targets: str = "all-linear"
    ckpt: bool = False
    attention: str = "sdpa"
    fp32_adapters: bool = True
    vlm: bool = False  # a tiny LLaVA (CLIP tower, 64 image tokens of the sequence); LoRA on the language model only
    train_projector: bool = False
    shape: dict[str, int] = field(default_factory=dict)


SHAPE = {"hidden": 256, "inter": 688, "layers": 2, "heads": 4, "kv": 4, "vocab": 1000, "seq": 256, "batch": 2}
CASES = [
    Case("lora bf16 weights, fp32 adapters"),
    Case("lora bf16 weights, bf16 adapters, no dropout", dropout=0.0, fp32_adapters=False),
    Case("lora mixed bf16 (fp32 weights)", precision="bf16"),
    Case("lora fp32", precision="fp32"),
    Case("lora attention only, GQA", targets="attention", shape={"kv": 2}),
    Case("lora + checkpointing", ckpt=True, shape={"layers": 4}),
    Case("lora eager attention", attention="eager"),
    Case("qlora 4-bit", bits=4),
    Case("qlora 4-bit under bf16 autocast", bits=4, precision="bf16"),
    Case("full bf16", method="full", fp32_adapters=False),
    Case("llava lora, frozen tower and projector", vlm=True),
    Case("llava lora + trained projector, mixed bf16", vlm=True, train_projector=True, precision="bf16"),
]
VISION = {"hidden": 128, "inter": 256, "layers": 2, "heads": 4, "image": 64, "patch": 8}  # 64 patches + CLS


class LivePeak:
    """Live bytes of tensor storages created inside the context (plus a baseline) and their peak."""

    def __init__(self, baseline: int, existing: set[int]) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
                out = func(*args, **(kwargs or {}))
                from torch.utils._pytree import tree_flatten

                for t in tree_flatten(out)[0]:
                    tracker.add(t)
                return out

        self.mode, self.live, self.peak, self.refs = Mode(), baseline, baseline, {}
        self.existing = existing  # storages counted in the baseline: views of them are not new

    def add(self, t: Any) -> None:
        import torch

        if not isinstance(t, torch.Tensor):
            return
        st = t.untyped_storage()
        key = st.data_ptr()
        if key in self.refs or key in self.existing or st.nbytes() == 0:
            return
        n = st.nbytes()

        def gone(_: Any, key: int = key, n: int = n) -> None:
            self.refs.pop(key, None)
            self.live -= n

        self.refs[key] = weakref.ref(st, gone)
        self.live += n
        self.peak = max(self.peak, self.live)


def build(case: Case) -> tuple[Any, dict[str, int]]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    s = SHAPE | case.shape
    cfg = LlamaConfig(hidden_size=s["hidden"], intermediate_size=s["inter"], num_hidden_layers=s["layers"],
                      num_attention_heads=s["heads"], num_key_value_heads=s["kv"], vocab_size=s["vocab"],
                      tie_word_embeddings=False, attn_implementation=case.attention)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if case.precision == "pure_bf16" or case.bits < 16 else torch.float32
    if case.vlm:
        from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration

        v = VISION
        vision = CLIPVisionConfig(hidden_size=v["hidden"], intermediate_size=v["inter"], num_hidden_layers=v["layers"],
                                  num_attention_heads=v["heads"], image_size=v["image"], patch_size=v["patch"])
        llava = LlavaConfig(vision_config=vision, text_config=cfg, image_token_id=s["vocab"] - 1,
                            image_seq_length=(v["image"] // v["patch"]) ** 2, attn_implementation=case.attention)
        model = LlavaForConditionalGeneration(llava).to(dtype)
    elif case.bits < 16:
        from transformers import BitsAndBytesConfig

        folder = tempfile.mkdtemp()
        LlamaForCausalLM(cfg).save_pretrained(folder)
        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16,
                               bnb_4bit_use_double_quant=True, bnb_4bit_quant_type="nf4")
        model = LlamaForCausalLM.from_pretrained(folder, quantization_config=q, dtype=dtype)
    else:
        model = LlamaForCausalLM(cfg).to(dtype)
    if case.ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if case.method == "lora" and not case.name == "studio":
        from peft import LoraConfig, get_peft_model

        names = ["q_proj", "k_proj", "v_proj", "o_proj"] + ([] if case.targets == "attention" else
                                                          ["gate_proj", "up_proj", "down_proj"])
        targets = rf"^(?!.*vision_tower).*\.({'|'.join(names)})$"
        extra = ["multi_modal_projector"] if case.train_projector else None
        lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=case.dropout, target_modules=targets,
                          modules_to_save=extra)
        model = get_peft_model(model, lora, autocast_adapter_dtype=case.fp32_adapters)
        if case.train_projector and case.precision == "bf16":
            for p in model.parameters():  # as jobs/loop.py align_trainable_dtype: what trains is fp32
                if p.requires_grad:
                    p.data = p.data.float()
    model.train()
    return model, s


def batch_for(case: Case, s: dict[str, int]) -> dict[str, Any]:
    import torch

    ids = torch.randint(0, s["vocab"] - 1, (s["batch"], s["seq"]))
    if not case.vlm:
        return {"input_ids": ids, "labels": ids, "attention_mask": torch.ones_like(ids)}
    v = VISION
    ids[:, 1:1 + (v["image"] // v["patch"]) ** 2] = s["vocab"] - 1
    pixels = torch.randn(s["batch"], 3, v["image"], v["image"])
    return {"input_ids": ids, "labels": ids, "attention_mask": torch.ones_like(ids), "pixel_values": pixels}


def inputs_for(case: Case, s: dict[str, int]) -> MemoryInputs:
    text = TextArch(hidden_size=s["hidden"], intermediate_size=s["inter"], num_layers=s["layers"],
                    num_heads=s["heads"], num_kv_heads=s["kv"], head_dim=s["hidden"] // s["heads"],
                    vocab_size=s["vocab"])
    v = VISION
    vision = VisionArch(hidden_size=v["hidden"], intermediate_size=v["inter"], num_layers=v["layers"],
                        num_heads=v["heads"], image_size=v["image"], patch_size=v["patch"],
                        image_tokens=(v["image"] // v["patch"]) ** 2, projector_in=v["hidden"],
                        projector_out=s["hidden"]) if case.vlm else None
    mixed = case.precision == "bf16"
    weight_bytes = 4 if case.precision in ("fp32", "bf16") and case.bits == 16 else 2
    compute = 4 if case.precision == "fp32" else 2
    trainable = 4 if case.fp32_adapters or case.precision in ("fp32", "bf16") else 2
    full = case.method == "full"
    modules = ("q", "k", "v", "o") if case.targets == "attention" else ("q", "k", "v", "o", "gate", "up", "down")
    return MemoryInputs(
        arch=Architecture(text=text, vision=vision), train_projector=case.train_projector,
        method="qlora" if case.bits < 16 else case.method, micro_batch=s["batch"],
        seq_len=s["seq"], lora_modules=modules, lora_dropout=case.dropout > 0, weight_bits=case.bits,
        double_quant=True, weight_bytes=weight_bytes, compute_bytes=compute, trainable_bytes=2 if full else trainable,
        autocast=mixed, gradient_checkpointing=case.ckpt, attention=case.attention, train_embeddings=full,
        train_head=full, train_language_model=full,
        dropout_mask_bytes=4 if (trainable == 4 and not full) or mixed else compute,  # CPU: input's dtype
        cuda_context_bytes=0.0, allocator_fraction=0.0, training_kv_cache=not case.ckpt,
    )


def track(model: Any, batch: dict[str, Any], opt: Any, autocast: Any, before_step: Any = None) -> tuple[int, int]:
    """(bytes autograd saves in a forward pass, peak live bytes over a whole training step)."""
    import torch

    def step() -> None:
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        if before_step:
            before_step()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # optimizer states exist from here on, as in a long run
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: Any) -> Any:
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            saved.setdefault(st.data_ptr(), st.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        model(**batch).loss.backward()
    opt.zero_grad(set_to_none=True)
    existing = {t.untyped_storage(): None for st in opt.state.values() for t in st.values() if torch.is_tensor(t)}
    existing |= {p.untyped_storage(): None for p in model.parameters()}
    existing |= {b.untyped_storage(): None for b in model.buffers()}
    existing |= {t.untyped_storage(): None for t in batch.values()}
    ptrs = {st.data_ptr(): st.nbytes() for st in existing}
    tracker = LivePeak(sum(ptrs.values()), set(ptrs))
    with tracker.mode:
        step()
    return sum(saved.values()), tracker.peak


def measure(case: Case) -> dict[str, Any]:
    """Saved bytes at the end of the forward pass and the peak over a training step, with the estimate."""
    import torch

    model, s = build(case)
    batch = batch_for(case, s)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], foreach=True)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=case.precision == "bf16")
    saved, peak = track(model, batch, opt, autocast)
    est = estimate(inputs_for(case, s))
    return {"case": case.name, "saved": saved, "peak": peak, "estimate": est, "est_saved": _estimated_saved(est, s)}


def measure_studio(values: dict[str, Any]) -> dict[str, Any]:
    """The same through the studio's own code: a TrainConfig, its method's ``prepare``, the loop's dtype rules and
    optimizer, and ``inputs_from_train_config`` for the estimate (CPU: dropout masks in the input's dtype)."""

    from core.memory import inputs_from_train_config
    from core.methods import get_method
    from core.models.loading import load_dtype
    from core.train_config import TrainConfig
    from jobs.loop import align_trainable_dtype, autocast_for
    from jobs.optimizers import build_optimizer

    s = SHAPE
    cfg = TrainConfig(batch_size=s["batch"], max_length=s["seq"], device="cpu", **values)
    case = Case("studio", precision=cfg.precision)
    model, _ = build(dataclasses.replace(case, method="none"))
    model = model.to(load_dtype(cfg.precision, False))
    method = get_method(cfg.method)
    model = method.prepare(model, cfg)
    align_trainable_dtype(model, cfg.precision)
    model.train()
    opt = build_optimizer(cfg, method.optimizer_groups(model, cfg))
    batch = batch_for(case, s)
    if cfg.method in ("prompt", "ptuning"):  # peft prepends the virtual tokens; labels must cover them
        batch = {k: v for k, v in batch.items() if k != "labels"} | {"labels": batch["input_ids"]}
    saved, peak = track(model, batch, opt, autocast_for(cfg, "cpu"))
    arch = Architecture(text=inputs_for(case, s).arch.text)
    inp = inputs_from_train_config(cfg, arch, cuda_context_bytes=0.0, allocator_fraction=0.0,
                                   dropout_mask_bytes=cfg_mask_bytes(cfg))
    est = estimate(inp)
    label = "studio " + " ".join(str(v) for v in values.values())
    return {"case": label, "saved": saved, "peak": peak,
            "estimate": est, "est_saved": _estimated_saved(est, s)}


def cfg_mask_bytes(cfg: Any) -> int:
    return 2 if cfg.precision == "pure_bf16" else 4


def _estimated_saved(est: Estimate, s: dict[str, int]) -> float:
    """What the estimate says autograd keeps after the forward pass: activations, autocast copies and the fp32
    log-softmax output (4 bytes per logit; the other 8 of the loss's 12 are backward temporaries)."""
    inp = est.inputs
    extra = 0.0 if inp.gradient_checkpointing else est.term("autocast_copies").bytes
    return est.term("activations").bytes + extra + 4 * inp.tokens * s["vocab"]


STUDIO = [
    {"method": "full", "precision": "pure_bf16"},
    {"method": "freeze", "freeze_layers": 1, "precision": "bf16"},
    {"method": "lisa", "lisa_layers": 1, "precision": "bf16"},
    {"method": "adapter", "adapter_size": 16, "precision": "bf16"},
    {"method": "prompt", "prompt_tokens": 16, "precision": "pure_bf16"},
    {"method": "lora", "precision": "bf16", "optimizer": "adafactor"},
]


def main() -> None:
    print(f"{'case':45s} {'saved MB':>9s} {'est MB':>8s} {'err':>6s}   {'peak MB':>8s} {'est MB':>8s} {'err':>6s}")
    for r in [measure(c) for c in CASES] + [measure_studio(v) for v in STUDIO]:
        est_peak = r["estimate"].allocated_bytes
        print(f"{r['case']:45s} {r['saved'] / 1e6:9.2f} {r['est_saved'] / 1e6:8.2f} "
              f"{(r['est_saved'] / r['saved'] - 1):+6.1%}   {r['peak'] / 1e6:8.2f} {est_peak / 1e6:8.2f} "
              f"{(est_peak / r['peak'] - 1):+6.1%}")


if __name__ == "__main__":
    main()
