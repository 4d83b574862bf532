"""An independent reader of PEFT LoRA adapter folders: the Python standard library and numpy only.

No safetensors, peft, transformers or torch: the safetensors format is parsed here by its rules —
8-byte little-endian header length N (at most 100,000,000 and at most the bytes after it), N bytes
of UTF-8 JSON starting with "{" with no duplicate keys, each entry exactly {dtype, shape,
data_offsets} with dtype F64/F32/F16/BF16, a shape of non-negative integers, offsets spanning
exactly prod(shape) x dtype size bytes, the entries tiling the data section with no gap, overlap or
trailing byte, __metadata__ mapping strings to strings (with format "pt", which transformers
wants) — plus what almora's writer promises beyond the format: the data section 8-byte aligned and
every value finite. adapter_config.json is read with PEFT's rules (target_modules a list matched as
the path or a dotted suffix, a regex matched with re.fullmatch, or "all-linear"; rank_pattern and
alpha_pattern keys matched with re.match(rf"(.*\\.)?({key})$", path); scaling lora_alpha / r, or
lora_alpha / sqrt(r) with use_rslora), and each adapted layer's output is computed from the files:
y = x W^T + scaling (x lora_A^T) lora_B^T, W from the base model folder's model.safetensors or given.

Usage: peft_numpy.py < {"cases": [{"adapter_dir", "model_dir" (or null), "base": {module: matrix} (or
null), "inputs": {module: matrix}}]}, a matrix being {"rows", "cols", "data"} (row-major).
Prints {"numpy", "results": [{"problems": [str, ...], "outputs": {module: matrix}}]}.
"""
import json
import math
import os
import re
import struct
import sys

import numpy as np

MAX_HEADER = 100_000_000
DTYPES = {"F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": (None, 2)}
PREFIX = "base_model.model."
ENTRY_FIELDS = {"dtype", "shape", "data_offsets"}


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate key among {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    return dict(pairs)


def _values(raw, dtype):
    """The values of one tensor's bytes as float64."""
    if dtype == "BF16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.astype("<u4").view("<f4").astype(np.float64)
    return np.frombuffer(raw, dtype=DTYPES[dtype][0]).astype(np.float64)


def read_safetensors(file, problems):
    """{name: (dtype, shape, float64 ndarray)} and the __metadata__, or (None, None) when the file breaks the format."""
    name = os.path.basename(file)
    try:
        with open(file, "rb") as f:
            raw = f.read()
    except OSError as error:
        problems.append(f"cannot read {name}: {error}")
        return None, None
    if len(raw) < 8:
        problems.append(f"{name}: {len(raw)} bytes, shorter than the 8-byte header length")
        return None, None
    (n,) = struct.unpack("<Q", raw[:8])
    if n > MAX_HEADER or n > len(raw) - 8:
        problems.append(f"{name}: header length {n} exceeds the limit or the {len(raw) - 8} bytes after it")
        return None, None
    if (8 + n) % 8:
        problems.append(f"{name}: the data section starts at byte {8 + n}, not 8-byte aligned (almora's writer pads the header)")
    try:
        text = raw[8:8 + n].decode("utf-8")
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as error:
        problems.append(f"{name}: header is not UTF-8 JSON without duplicate keys ({error})")
        return None, None
    if not text.startswith("{") or not isinstance(header, dict):
        problems.append(f"{name}: header must be a JSON object starting with '{{'")
        return None, None
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", None)
    if metadata is not None and (not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())):
        problems.append(f"{name}: __metadata__ must map strings to strings")
    if not isinstance(metadata, dict) or metadata.get("format") != "pt":
        problems.append(f"{name}: __metadata__.format is not 'pt' (transformers' load_state_dict wants it)")
    entries = []
    for key, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != ENTRY_FIELDS:
            problems.append(f"{name}: {key}'s entry must have exactly dtype, shape and data_offsets")
            continue
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        integers = lambda v: isinstance(v, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v)  # noqa: E731
        if dtype not in DTYPES or not integers(shape) or not integers(offsets) or len(offsets) != 2:
            problems.append(f"{name}: {key} has dtype {dtype!r}, shape {shape!r}, data_offsets {offsets!r}")
            continue
        size = math.prod(shape) * DTYPES[dtype][1]
        if not offsets[0] <= offsets[1] <= len(data) or offsets[1] - offsets[0] != size:
            problems.append(f"{name}: {key} spans {offsets} of a {len(data)}-byte data section; its shape {shape} of {dtype} needs {size} bytes")
            continue
        entries.append((offsets[0], offsets[1], key, dtype, shape))
    end = 0
    for begin, stop, key, _, _ in sorted(entries):
        if begin != end:
            problems.append(f"{name}: {key} starts at byte {begin}, expected {end} (tensors must tile the data section)")
        end = max(end, stop)
    if end != len(data):
        problems.append(f"{name}: {len(data) - end} bytes after the last tensor")
    tensors = {}
    for begin, stop, key, dtype, shape in entries:
        values = _values(data[begin:stop], dtype)
        if not np.all(np.isfinite(values)):
            problems.append(f"{name}: {key} holds a non-finite value")
        tensors[key] = (dtype, shape, values.reshape(shape))
    return tensors, metadata


def targeted(module, targets):
    """PEFT's check_target_module_exists: a string is a regex the full path must match, a list names the path or a dotted suffix."""
    if isinstance(targets, str):
        return re.fullmatch(targets, module) is not None
    return module in targets or any(module.endswith("." + t) for t in targets)


def pattern_value(table, module, default):
    """PEFT's get_pattern_key: the first key k with re.match(rf"(.*\\.)?({k})$", module), else the default."""
    for key, value in (table or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def read_adapter(directory, problems):
    """(config, {module: (lora_A, lora_B, scaling)}) as PEFT would load the folder, or (None, None)."""
    try:
        with open(os.path.join(directory, "adapter_config.json"), encoding="utf-8") as f:
            config = json.load(f, object_pairs_hook=_no_duplicates)
    except (OSError, ValueError) as error:
        problems.append(f"cannot read adapter_config.json: {error}")
        return None, None
    for field in ("peft_type", "task_type", "base_model_name_or_path", "r", "lora_alpha", "target_modules"):
        if field not in config:
            problems.append(f"adapter_config.json lacks {field}")
    if config.get("peft_type") != "LORA":
        problems.append(f"adapter_config.json: peft_type is {config.get('peft_type')!r}")
    for field, plain in (("bias", "none"), ("use_dora", False), ("fan_in_fan_out", False)):
        if config.get(field, plain) != plain:
            problems.append(f"adapter_config.json: {field} is {config[field]!r}; this check reads plain LoRA on nn.Linear")
    r, alpha, targets = config.get("r"), config.get("lora_alpha"), config.get("target_modules")
    if not (isinstance(r, int) and r > 0 and isinstance(alpha, (int, float)) and alpha > 0):
        problems.append(f"adapter_config.json: r {r!r} and lora_alpha {alpha!r} must be a positive integer and a positive number")
        return None, None
    tensors, _ = read_safetensors(os.path.join(directory, "adapter_model.safetensors"), problems)
    if tensors is None:
        return None, None
    pairs = {}
    for key in tensors:
        match = re.fullmatch(r"base_model\.model\.(.+)\.lora_([AB])\.weight", key)
        if not match:
            problems.append(f"adapter_model.safetensors has the key {key}, which is no LoRA weight PEFT loads")
            continue
        pairs.setdefault(match[1], {})[match[2]] = tensors[key][2]
    modules = {}
    for module, pair in sorted(pairs.items()):
        selected = (targets == "all-linear" and module.rsplit(".", 1)[-1] != "lm_head") or (targets != "all-linear" and targeted(module, targets))
        if not selected:
            problems.append(f"{module} has adapter tensors, but target_modules {targets!r} does not select it")
        if set(pair) != {"A", "B"}:
            problems.append(f"{module} lacks lora_{'B' if 'A' in pair else 'A'}")
            continue
        rank = pattern_value(config.get("rank_pattern"), module, r)
        a, b = pair["A"], pair["B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != rank or b.shape[1] != rank:
            problems.append(f"{module}: lora_A {list(a.shape)} and lora_B {list(b.shape)} are not [r, in] and [out, r] with r = {rank}")
            continue
        module_alpha = pattern_value(config.get("alpha_pattern"), module, alpha)
        scaling = module_alpha / math.sqrt(rank) if config.get("use_rslora") else module_alpha / rank
        modules[module] = (a, b, scaling)
    return config, modules


def matrix(plain):
    return np.array(plain["data"], dtype=np.float64).reshape(plain["rows"], plain["cols"])


def plain(m):
    return {"rows": int(m.shape[0]), "cols": int(m.shape[1]), "data": m.reshape(-1).tolist()}


def check(case):
    problems = []
    config, modules = read_adapter(case["adapter_dir"], problems)
    weights = {}
    if case.get("model_dir"):
        if not os.path.isfile(os.path.join(case["model_dir"], "config.json")):
            problems.append("the model folder has no config.json")
        tensors, _ = read_safetensors(os.path.join(case["model_dir"], "model.safetensors"), problems)
        weights = {k[: -len(".weight")]: v[2] for k, v in (tensors or {}).items() if k.endswith(".weight")}
    weights.update({m: matrix(w) for m, w in (case.get("base") or {}).items()})
    outputs = {}
    for module, (a, b, scaling) in (modules or {}).items():
        if module not in case["inputs"] or module not in weights:
            problems.append(f"{module}: no input or no base weight to run the layer on")
            continue
        x, w = matrix(case["inputs"][module]), weights[module]
        if w.shape != (b.shape[0], a.shape[1]):
            problems.append(f"{module}: the base weight is {list(w.shape)}, the adapter needs [{b.shape[0]}, {a.shape[1]}]")
            continue
        outputs[module] = plain(x @ w.T + scaling * ((x @ a.T) @ b.T))
    return {"problems": problems, "outputs": outputs}


def main():
    cases = json.load(sys.stdin)["cases"]
    json.dump({"numpy": np.__version__, "results": [check(c) for c in cases]}, sys.stdout)


if __name__ == "__main__":
    main()
