"""PyTorch CPU autograd of the same LoRA attention loss almora computes, for the scaling bench.

Reads one JSON object from stdin: {"lengths": [...], "d": int, "rank": int, "adaptation":
"partial"|"full", "repeats": int, "budget": seconds, "seed": int}; prints one JSON object with the
median and raw times per length, and the torch version and thread count. Inputs are random with the
same shapes and scale as almora's; timing does not depend on their values.
"""
import json
import os
import sys
import time

import torch


def main() -> None:
    spec = json.load(sys.stdin)
    torch.manual_seed(spec["seed"])
    d, r = spec["d"], spec["rank"]
    targets = ["q", "v"] if spec["adaptation"] == "partial" else ["q", "k", "v"]
    scaling, beta = 2.0, d ** -0.5
    results = {}
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for length in spec["lengths"]:
        # Autograd here keeps about six L×L float32 matrices alive; stay under half the machine.
        needed = 6 * 4 * length * length
        if needed > memory / 2:
            results[str(length)] = {"error": f"skipped: needs ~{needed / 2**30:.0f} GiB of {memory / 2**30:.0f} GiB"}
            break
        x = torch.randn(length, d, dtype=torch.float32) * 0.3
        y = torch.randn(length, d, dtype=torch.float32)
        frozen = {t: torch.randn(d, d, dtype=torch.float32) / d ** 0.5 for t in "qkv"}
        adapters = {t: (torch.randn(r, d, dtype=torch.float32).mul_(0.2).requires_grad_(),
                        torch.randn(d, r, dtype=torch.float32).mul_(0.2).requires_grad_()) for t in targets}

        def step() -> None:
            w = {t: frozen[t] + scaling * adapters[t][1] @ adapters[t][0] if t in adapters else frozen[t] for t in "qkv"}
            q, k, v = x @ w["q"], x @ w["k"], x @ w["v"]
            out = torch.softmax(beta * (q @ k.T), dim=-1) @ v
            loss = 0.5 * ((out - y) ** 2).sum()
            params = [p for t in targets for p in adapters[t]]
            torch.autograd.grad(loss, params)

        try:
            step()
            times = []
            for _ in range(spec["repeats"]):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
            times.sort()
            results[str(length)] = {"median": times[len(times) // 2], "times": times}
            if times[len(times) // 2] * 4 > spec["budget"]:
                break
        except RuntimeError as error:  # out of memory at long L
            results[str(length)] = {"error": str(error).splitlines()[0]}
            break
    json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
