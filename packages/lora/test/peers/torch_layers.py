"""PyTorch float64 autograd of a stack of LoRA attention layers: the peer the layer API is checked against.

Reads JSON on stdin: {"layers": [layer, ...], "x": matrix, "g": matrix}, each matrix
{"rows", "cols", "data"} row-major, each layer as almora's AttentionLayer (torch.nn.Linear weights,
PEFT lora_A r x in and lora_B out x r, scaling alpha / r). Computes loss = sum(stack(x) * g) and
prints {"torch", "output", "dx", "grads": [{module: {"lora_A", "lora_B"}}, ...]} as JSON.
"""
import json
import math
import sys

import torch

MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"]


def tensor(m, grad=False):
    return torch.tensor(m["data"], dtype=torch.float64).reshape(m["rows"], m["cols"]).requires_grad_(grad)


def plain(t):
    t = t.detach()
    return {"rows": t.shape[0], "cols": t.shape[1], "data": t.reshape(-1).tolist()}


def layer_forward(spec, x, leaves):
    lora = spec.get("lora") or {"r": 1, "alpha": 1, "adapters": {}}
    scaling = lora["alpha"] / lora["r"]
    weights = {}
    for name in MODULES:
        w = tensor(spec["weights"][name])
        if name in lora["adapters"]:
            a = tensor(lora["adapters"][name]["lora_A"], grad=True)
            b = tensor(lora["adapters"][name]["lora_B"], grad=True)
            leaves[name] = (a, b)
            w = w + scaling * (b @ a)
        weights[name] = w
    bias = spec.get("bias") or {}

    def linear(inp, name):
        out = inp @ weights[name].T
        return out + tensor(bias[name])[0] if name in bias else out

    q, k, v = linear(x, "q_proj"), linear(x, "k_proj"), linear(x, "v_proj")
    heads = spec["heads"]
    dh, dv = q.shape[1] // heads, v.shape[1] // heads
    beta = spec.get("beta") or 1 / math.sqrt(dh)
    outputs = []
    for h in range(heads):
        scores = beta * (q[:, h * dh:(h + 1) * dh] @ k[:, h * dh:(h + 1) * dh].T)
        if spec.get("causal"):
            mask = torch.ones_like(scores, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        outputs.append(torch.softmax(scores, dim=-1) @ v[:, h * dv:(h + 1) * dv])
    return linear(torch.cat(outputs, dim=1), "o_proj")


def main():
    spec = json.load(sys.stdin)
    x = tensor(spec["x"], grad=True)
    leaves = [{} for _ in spec["layers"]]
    out = x
    for layer, own in zip(spec["layers"], leaves):
        out = layer_forward(layer, out, own)
    (out * tensor(spec["g"])).sum().backward()
    grads = [{name: {"lora_A": plain(a.grad), "lora_B": plain(b.grad)} for name, (a, b) in own.items()} for own in leaves]
    json.dump({"torch": torch.__version__, "output": plain(out), "dx": plain(x.grad), "grads": grads}, sys.stdout)


if __name__ == "__main__":
    main()
