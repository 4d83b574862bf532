"""What a Hugging Face + PEFT user would load from a Qwen3 model folder and a LoRA adapter folder.

An independent reader of the files apps/train writes (no transformers, peft or safetensors needed):
both safetensors files are parsed by @almora/peft's numpy peer (packages/peft/test/peers/
peft_numpy.py: the standard library and numpy, by the format's rules — 8-byte little-endian header
length N, N bytes of JSON header starting with "{", each tensor's dtype, shape and data_offsets
tiling the data section, raw little-endian F64/F32/F16/BF16 values); config.json and
adapter_config.json are held to what transformers' Qwen3ForCausalLM and PEFT's LoRA expect
(state-dict keys and torch shapes [out, in], 1-D RMSNorm weights, lm_head only when untied; adapter
keys `base_model.model.<module path>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r] on every
module PEFT's target_modules rule matches, peft_type LORA, task_type CAUSAL_LM). Each adapter is then
merged PEFT's way (merge_and_unload: W + scaling * lora_B @ lora_A, scaling = lora_alpha / r, or
lora_alpha / sqrt(r) with use_rslora) and the merged model runs through the float64 forward of
packages/model/test/peers/torch_qwen3.py.

Usage: hf_files_torch.py MODEL_DIR [ADAPTER_DIR] < {"ids": [[...], ...]}
Prints {"torch", "problems": [str, ...], "logits": [{"rows", "cols", "data"}, ...] or null}; the
logits are null when a problem leaves the model undefined (a missing or misshapen tensor).
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # no __pycache__ left beside the model package's peer
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "packages", "model", "test", "peers"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "packages", "peft", "test", "peers"))
from torch_qwen3 import Model, plain  # noqa: E402  (the model package's float64 peer)
from peft_numpy import read_safetensors as read_safetensors_numpy, targeted  # noqa: E402  (@almora/peft's numpy reader)

PEFT_PREFIX = "base_model.model."
TORCH_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
# Fields of Qwen3Config that fix the shapes or the computation: the check wants them written, not defaulted.
REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "rms_norm_eps", "tie_word_embeddings", "max_position_embeddings")


def read_safetensors(file, problems):
    """{name: (dtype, shape, float64 tensor)} and the __metadata__, or (None, None): @almora/peft's numpy reader, in torch."""
    tensors, metadata = read_safetensors_numpy(file, problems)
    if tensors is None:
        return None, None
    return {key: (dtype, shape, torch.from_numpy(np.ascontiguousarray(values))) for key, (dtype, shape, values) in tensors.items()}, metadata


def read_json(file, problems):
    try:
        with open(file, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError) as error:
        problems.append(f"cannot read {os.path.basename(file)}: {error}")
        return None
    if not isinstance(value, dict):
        problems.append(f"{os.path.basename(file)} is not a JSON object")
        return None
    return value


def expected_shapes(c):
    """Qwen3ForCausalLM's state dict for config c: key -> torch shape, as transformers' modeling_qwen3 builds it."""
    hidden, inner, vocab, dh = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["head_dim"]
    q, kv = c["num_attention_heads"] * dh, c["num_key_value_heads"] * dh
    linear = {"q_proj": [q, hidden], "k_proj": [kv, hidden], "v_proj": [kv, hidden], "o_proj": [hidden, q],
              "gate_proj": [inner, hidden], "up_proj": [inner, hidden], "down_proj": [hidden, inner]}
    shapes = {"model.embed_tokens.weight": [vocab, hidden], "model.norm.weight": [hidden]}
    for layer in range(c["num_hidden_layers"]):
        for module in ATTENTION:
            shapes[f"model.layers.{layer}.self_attn.{module}.weight"] = linear[module]
        for module in MLP:
            shapes[f"model.layers.{layer}.mlp.{module}.weight"] = linear[module]
        shapes[f"model.layers.{layer}.self_attn.q_norm.weight"] = [dh]
        shapes[f"model.layers.{layer}.self_attn.k_norm.weight"] = [dh]
        shapes[f"model.layers.{layer}.input_layernorm.weight"] = [hidden]
        shapes[f"model.layers.{layer}.post_attention_layernorm.weight"] = [hidden]
    if not c["tie_word_embeddings"]:
        shapes["lm_head.weight"] = [vocab, hidden]
    return shapes


def check_config(c, problems):
    """The config the forward needs (rope_theta resolved), or None when config.json cannot define the model."""
    if c.get("model_type") != "qwen3":
        problems.append(f"config.json: model_type is {c.get('model_type')!r}; AutoConfig needs 'qwen3'")
    if "Qwen3ForCausalLM" not in (c.get("architectures") or []):
        problems.append(f"config.json: architectures is {c.get('architectures')!r}, without 'Qwen3ForCausalLM'")
    for field, allowed in (("hidden_act", "silu"), ("attention_bias", False), ("rope_scaling", None), ("use_sliding_window", False)):
        if c.get(field, allowed) != allowed:
            problems.append(f"config.json: {field} is {c[field]!r}; the peer computes {allowed!r}")
    missing = [field for field in REQUIRED if field not in c]
    if missing:
        problems.append(f"config.json lacks {', '.join(missing)}")
        return None
    rope = c.get("rope_parameters") or {}
    theta = c.get("rope_theta", rope.get("rope_theta"))
    if rope.get("rope_type", "default") != "default" or not isinstance(theta, (int, float)):
        problems.append(f"config.json: rotary embedding {rope or theta!r} is not the default one with a rope_theta")
        return None
    if c["head_dim"] % 2 or c["num_attention_heads"] % c["num_key_value_heads"]:
        problems.append("config.json: head_dim must be even and num_key_value_heads must divide num_attention_heads")
        return None
    return {**c, "rope_theta": theta}


def load_model(directory, problems):
    c = read_json(os.path.join(directory, "config.json"), problems)
    config = check_config(c, problems) if c is not None else None
    tensors, _ = read_safetensors(os.path.join(directory, "model.safetensors"), problems)
    if config is None or tensors is None:
        return None, None
    dtype = c.get("torch_dtype", c.get("dtype"))
    shapes = expected_shapes(config)
    weights = {}
    for key, shape in shapes.items():
        if key not in tensors:
            problems.append(f"model.safetensors has no {key} (transformers would initialise it at random)")
            continue
        file_dtype, file_shape, value = tensors[key]
        if file_shape != shape:
            problems.append(f"model.safetensors: {key} has shape {file_shape}, Qwen3ForCausalLM's is {shape}")
            continue
        if TORCH_DTYPES[file_dtype] != dtype:
            problems.append(f"model.safetensors: {key} is {file_dtype} but config.json says torch_dtype {dtype!r}")
        weights[key] = value
    for key in tensors.keys() - shapes.keys():
        if key == "lm_head.weight" and config["tie_word_embeddings"]:
            if "model.embed_tokens.weight" in tensors and not torch.equal(tensors[key][2], tensors["model.embed_tokens.weight"][2]):
                problems.append("model.safetensors: lm_head.weight differs from the tied model.embed_tokens.weight")
            continue
        problems.append(f"model.safetensors has the unexpected key {key} (transformers would ignore it)")
    return config, (weights if len(weights) == len(shapes) else None)


def check_adapter_config(a, problems):
    """The scaling PEFT applies, or None when adapter_config.json cannot define LoRA adapters."""
    for field, allowed in (("peft_type", "LORA"), ("task_type", "CAUSAL_LM")):
        if a.get(field) != allowed:
            problems.append(f"adapter_config.json: {field} is {a.get(field)!r}, not {allowed!r}")
    for field, allowed in (("bias", "none"), ("fan_in_fan_out", False), ("use_dora", False)):
        if a.get(field, allowed) != allowed:
            problems.append(f"adapter_config.json: {field} is {a[field]!r}; plain LoRA on nn.Linear has {allowed!r}")
    for field in ("rank_pattern", "alpha_pattern", "layers_to_transform", "modules_to_save"):
        if a.get(field):
            problems.append(f"adapter_config.json: {field} is set ({a[field]!r}); this check reads one r and lora_alpha on every targeted module")
    r, alpha, targets = a.get("r"), a.get("lora_alpha"), a.get("target_modules")
    if not isinstance(targets, str) and not (isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets)):
        problems.append(f"adapter_config.json: target_modules is {targets!r}, neither a regex nor a list of module names")
        return None
    if not (isinstance(r, int) and r > 0 and isinstance(alpha, (int, float)) and alpha > 0):
        problems.append(f"adapter_config.json: r {r!r} and lora_alpha {alpha!r} must be a positive integer and a positive number")
        return None
    return alpha / math.sqrt(r) if a.get("use_rslora") else alpha / r


def merge_adapters(directory, config, weights, problems):
    """Merges every adapter into weights (in place), PEFT's merge_and_unload, after checking the files."""
    a = read_json(os.path.join(directory, "adapter_config.json"), problems)
    scaling = check_adapter_config(a, problems) if a is not None else None
    tensors, _ = read_safetensors(os.path.join(directory, "adapter_model.safetensors"), problems)
    if scaling is None or tensors is None:
        return False
    r, targets = a["r"], a["target_modules"]
    # Every nn.Linear of Qwen3ForCausalLM by its module name (lm_head is one even when tied).
    linears = [key[:-len(".weight")] for key in expected_shapes(config) if key.endswith("_proj.weight")] + ["lm_head"]
    modules = [m for m in linears if targeted(m, targets)]
    for t in [targets] if isinstance(targets, str) else targets:
        if not any(targeted(m, t if isinstance(targets, str) else [t]) for m in linears):
            problems.append(f"adapter_config.json: target module {t!r} matches no nn.Linear of Qwen3ForCausalLM")
    used, ok = set(), True
    for module in modules:
        if module == "lm_head":
            problems.append("adapter_config.json targets lm_head; this check merges decoder-layer modules only")
            ok = False
            continue
        out, inner = weights[module + ".weight"].shape
        pair = []
        for which, shape in (("lora_A", [r, inner]), ("lora_B", [out, r])):
            key = f"{PEFT_PREFIX}{module}.{which}.weight"
            used.add(key)
            if key not in tensors:
                problems.append(f"adapter_model.safetensors has no {key} (PEFT would keep its fresh initialisation)")
            elif tensors[key][1] != shape:
                problems.append(f"adapter_model.safetensors: {key} has shape {tensors[key][1]}, PEFT's is {shape} ({'[r, in]' if which == 'lora_A' else '[out, r]'})")
            else:
                pair.append(tensors[key][2])
        if len(pair) == 2:
            lora_a, lora_b = pair
            weights[module + ".weight"] = weights[module + ".weight"] + scaling * (lora_b @ lora_a)
        else:
            ok = False
    for key in sorted(tensors.keys() - used):
        problems.append(f"adapter_model.safetensors has the unexpected key {key} (PEFT would not load it into any LoRA layer)")
    return ok


def main():
    model_dir = sys.argv[1]
    adapter_dir = sys.argv[2] if len(sys.argv) > 2 else None
    ids = json.load(sys.stdin)["ids"]
    problems = []
    config, weights = load_model(model_dir, problems)
    ready = weights is not None
    if ready and adapter_dir is not None:
        ready = merge_adapters(adapter_dir, config, weights, problems)
    for sequence in ids if ready else []:
        if not 0 < len(sequence) <= config["max_position_embeddings"]:
            problems.append(f"a sequence of {len(sequence)} ids does not fit max_position_embeddings {config['max_position_embeddings']}")
            ready = False
        elif not all(isinstance(t, int) and 0 <= t < config["vocab_size"] for t in sequence):
            problems.append(f"ids outside the vocabulary of {config['vocab_size']}")
            ready = False
    logits = None
    if ready:
        model = Model({"config": config, "weights": {key: {"rows": 1 if w.dim() == 1 else w.shape[0], "cols": w.shape[-1], "data": w.reshape(-1).tolist()} for key, w in weights.items()}, "lora": None})
        with torch.no_grad():
            logits = [plain(model.logits(sequence)) for sequence in ids]
    json.dump({"torch": torch.__version__, "problems": problems, "logits": logits}, sys.stdout)


if __name__ == "__main__":
    main()
