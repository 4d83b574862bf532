"""PyTorch float64 autograd of a Qwen3 causal LM with LoRA: the peer @almora/model is checked against.

Written directly in torch after transformers' modeling_qwen3.py (no transformers package needed):
embed_tokens -> [input_layernorm -> q/k/v_proj -> q_norm/k_norm per head -> rotary (rotate_half)
-> repeat_kv -> causal softmax(q k^T / sqrt(head_dim)) v -> o_proj -> residual -> post_attention_layernorm
-> down_proj(silu(gate_proj) * up_proj) -> residual] x N -> norm -> lm_head, and the mean cross-entropy
of next-token prediction over every sequence of the batch (labels shifted, -100 ignored).

Reads JSON on stdin: {"config", "weights": {key: matrix}, "lora": {"r", "lora_alpha", "adapters":
{module path: {"lora_A", "lora_B"}}} or null, "ids": [[...], ...], "labels": [[...], ...] or null,
"qkNormCap": number or null}, each matrix {"rows", "cols", "data"} row-major (1-D tensors as 1 x n).
Prints {"torch", "loss", "logits": [matrix, ...], "weights": {key: grad}, "lora": {path: {"lora_A", "lora_B"}}}.
"""
import json
import math
import sys

import torch

IGNORE_INDEX = -100


def tensor(m):
    return torch.tensor(m["data"], dtype=torch.float64).reshape(m["rows"], m["cols"]).requires_grad_(True)


def plain(t):
    t = t.detach()
    return {"rows": t.shape[0], "cols": t.shape[1], "data": t.reshape(-1).tolist()}


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Model:
    def __init__(self, spec):
        self.config = spec["config"]
        self.params = {key: tensor(m) for key, m in spec["weights"].items()}
        lora = spec.get("lora")
        self.scaling = lora["lora_alpha"] / lora["r"] if lora else 0.0
        self.adapters = {path: (tensor(a["lora_A"]), tensor(a["lora_B"])) for path, a in (lora["adapters"] if lora else {}).items()}
        self.cap = spec.get("qkNormCap")

    def vector(self, key):
        """An RMSNorm weight, a 1-D tensor (sent as a 1 x n row)."""
        return self.params[key].reshape(-1)

    def linear(self, x, path):
        out = x @ self.params[path + ".weight"].T
        if path in self.adapters:
            a, b = self.adapters[path]
            out = out + self.scaling * ((x @ a.T) @ b.T)
        return out

    def norm_gain(self, key):
        gain = self.vector(key)
        return gain if self.cap is None else torch.clamp(gain, -self.cap, self.cap)

    def logits(self, ids):
        c = self.config
        eps, d, heads, kv = c["rms_norm_eps"], c["head_dim"], c["num_attention_heads"], c["num_key_value_heads"]
        length = len(ids)
        embed = self.params["model.embed_tokens.weight"]
        h = embed[torch.tensor(ids, dtype=torch.long)]
        inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
        freqs = torch.outer(torch.arange(length, dtype=torch.float64), inv_freq)
        angles = torch.cat((freqs, freqs), dim=-1)
        cos, sin = angles.cos(), angles.sin()
        mask = torch.ones(length, length, dtype=torch.bool).triu(1)
        for layer in range(c["num_hidden_layers"]):
            attn = f"model.layers.{layer}.self_attn"
            mlp = f"model.layers.{layer}.mlp"
            a = rms_norm(h, self.vector(f"model.layers.{layer}.input_layernorm.weight"), eps)
            q = self.linear(a, f"{attn}.q_proj").view(length, heads, d).transpose(0, 1)
            k = self.linear(a, f"{attn}.k_proj").view(length, kv, d).transpose(0, 1)
            v = self.linear(a, f"{attn}.v_proj").view(length, kv, d).transpose(0, 1)
            q = rms_norm(q, self.norm_gain(f"{attn}.q_norm.weight"), eps)
            k = rms_norm(k, self.norm_gain(f"{attn}.k_norm.weight"), eps)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(heads // kv, dim=0)
            v = v.repeat_interleave(heads // kv, dim=0)
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
            probabilities = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
            o = (probabilities @ v).transpose(0, 1).reshape(length, heads * d)
            h = h + self.linear(o, f"{attn}.o_proj")
            b = rms_norm(h, self.vector(f"model.layers.{layer}.post_attention_layernorm.weight"), eps)
            h = h + self.linear(torch.nn.functional.silu(self.linear(b, f"{mlp}.gate_proj")) * self.linear(b, f"{mlp}.up_proj"), f"{mlp}.down_proj")
        h = rms_norm(h, self.vector("model.norm.weight"), eps)
        head = embed if c["tie_word_embeddings"] else self.params["lm_head.weight"]
        return h @ head.T


def main():
    spec = json.load(sys.stdin)
    model = Model(spec)
    labels = spec.get("labels") or spec["ids"]
    logits = [model.logits(ids) for ids in spec["ids"]]
    shifted = torch.cat([z[:-1] for z in logits])
    targets = torch.tensor([t for lab in labels for t in lab[1:]], dtype=torch.long)
    loss = torch.nn.functional.cross_entropy(shifted, targets, ignore_index=IGNORE_INDEX, reduction="mean")
    loss.backward()
    json.dump({
        "torch": torch.__version__,
        "loss": loss.item(),
        "logits": [plain(z) for z in logits],
        "weights": {key: plain(p.grad) for key, p in model.params.items()},
        "lora": {path: {"lora_A": plain(a.grad), "lora_B": plain(b.grad)} for path, (a, b) in model.adapters.items()},
    }, sys.stdout)


if __name__ == "__main__":
    main()
