"""numpy (OpenBLAS) running almora's own algorithms for the LoRA attention loss, for the scaling bench.

The same three methods as @almora/lora's `loraGradients`, written against numpy so that a timing
compares implementations of one algorithm, not algorithms:
  'exact'             blocked exact attention, forward and backward fused per block of query rows
                      with c = O − Y (packages/lora/src/exact.ts, exactLossHead); no L×L matrix.
  'fast chained g2'   f̂ = D̂⁻¹·φ(Q)φ(K)ᵀ with Taylor degree-2 features, then the paper's chain
                      p₁ = f̂ ∘ (cVᵀ) kept low-rank by the face-splitting identity, p₂ = diag(p₁·1)·f̂
                      (packages/lora/src/chained.ts).
  'fast autodiff g2'  the same f̂, then reverse mode through Ô = D̂⁻¹·φ(Q)φ(K)ᵀV and the feature maps
                      (packages/lora/src/autodiff.ts).
Both fast methods are almora's `method: 'fast', degree: 2, polynomial: 'taylor', centerKeys: false`
(non-causal). Loss ½‖O − Y‖²; adapters in the paper's orientation, W = W* + (α/r)·B·A.

Reads one JSON object from stdin: {"lengths": [...], "d": int, "rank": int, "adaptation":
"partial"|"full", "methods": [...], "repeats": int, "budget": seconds, "seed": int, optional
"gamma" (Γ = max(‖√β·Q‖∞, ‖√β·K‖∞) of generated inputs, default 0.5), optional "threads" (OpenBLAS
threads; default its own), optional "blockSize" (query rows per exact block, default 128, almora's),
optional "inputs": {"<L>": {"x", "y", "weights": {"q","k","v"}, "adapters": {t: {"a","b"}},
"alpha", "beta"}} (matrices as lists of rows) to run on given inputs instead of generated ones}.
Prints one JSON object: numpy version, the BLAS it loaded (read from the process's own memory map,
not from build flags) with its thread count, and per length and method the median and raw times and
the adapter gradients {t: {"a", "b"}} (tiny: r×d and d×r), so a caller that passed the inputs can
compare them with almora's.
"""
import ctypes
import functools
import json
import math
import sys
import time

import numpy as np

TARGETS = ("q", "k", "v")
# How each method's time grows with L, to predict the next length against the budget.
GROWTH = {"exact": 2.0, "fast chained g2": 1.0, "fast autodiff g2": 1.0}


def loaded_blas() -> dict:
    """The BLAS library numpy actually loaded, found in /proc/self/maps after a matmul."""
    np.ones((64, 64)) @ np.ones((64, 64))
    with open("/proc/self/maps") as maps:
        paths = sorted({line.split()[-1] for line in maps if "blas" in line.rsplit("/", 1)[-1]})
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_config.restype = ctypes.c_char_p
            return {"name": "OpenBLAS", "library": path, "config": lib.openblas_get_config().decode(), "handle": lib}
        except (OSError, AttributeError):
            continue
    return {"name": "not OpenBLAS", "library": ", ".join(paths) or "none found", "config": "", "handle": None}


def generated_inputs(rng: np.random.Generator, length: int, d: int, rank: int, targets, gamma: float) -> dict:
    """Random inputs shaped and scaled like almora's syntheticProblem: X scaled so that Γ = gamma."""
    x = rng.standard_normal((length, d))
    weights = {t: rng.standard_normal((d, d)) / math.sqrt(d) for t in TARGETS}
    adapters = {t: {"a": 0.2 * rng.standard_normal((rank, d)), "b": 0.2 * rng.standard_normal((d, rank))} for t in targets}
    alpha, beta = 2.0 * rank, 1.0 / math.sqrt(d)
    w = effective_weights(weights, adapters, alpha / rank)
    gamma0 = math.sqrt(beta) * max(np.abs(x @ w["q"]).max(), np.abs(x @ w["k"]).max())
    return {"x": x * (gamma / gamma0), "y": rng.standard_normal((length, d)), "weights": weights, "adapters": adapters, "alpha": alpha, "beta": beta}


def given_inputs(spec: dict) -> dict:
    """Inputs passed in the JSON, as float64 arrays."""
    array = lambda m: np.array(m, dtype=np.float64)  # noqa: E731
    return {
        "x": array(spec["x"]),
        "y": array(spec["y"]),
        "weights": {t: array(spec["weights"][t]) for t in TARGETS},
        "adapters": {t: {"a": array(ab["a"]), "b": array(ab["b"])} for t, ab in spec["adapters"].items()},
        "alpha": float(spec["alpha"]),
        "beta": float(spec["beta"]),
    }


def effective_weights(weights: dict, adapters: dict, scaling: float) -> dict:
    """W_μ = W*_μ + (α/r)·B_μ·A_μ for adapted μ, W*_μ otherwise."""
    return {t: weights[t] + scaling * adapters[t]["b"] @ adapters[t]["a"] if t in adapters else weights[t] for t in TARGETS}


def exact_head(q, k, v, y, beta: float, block: int):
    """∂Q, ∂K, ∂V of ½‖O − Y‖² in one pass over blocks of query rows (almora's exactLossHead):
    f = softmax(β·Q_b·Kᵀ) with the row max subtracted, O_b = f·V, c = O_b − Y_b,
    p = f ∘ (c·Vᵀ − ⟨c_i, O_i⟩), ∂Q_b = β·p·K, ∂K += β·pᵀ·Q_b, ∂V += fᵀ·c."""
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    for start in range(0, q.shape[0], block):
        qb = q[start:start + block]
        f = qb @ k.T
        f *= beta
        f -= f.max(axis=1, keepdims=True)
        np.exp(f, out=f)
        f /= f.sum(axis=1, keepdims=True)
        ob = f @ v
        c = ob - y[start:start + block]
        p = c @ v.T
        p -= np.einsum("ij,ij->i", c, ob)[:, None]
        p *= f
        dq[start:start + block] = p @ k
        dk += p.T @ qb
        dv += f.T @ c
    return beta * dq, beta * dk, dv


def pair_weights(d: int, beta: float):
    """The degree-2 monomials x_i·x_j (i ≤ j) and their feature weights √(β²/2 · 2!/a!): β/√2 on the
    diagonal, β off it, so that ⟨φ(q), φ(k)⟩ = 1 + β q·k + (β q·k)²/2 (almora's featureTree, Taylor)."""
    rows, cols = np.triu_indices(d)
    return rows, cols, np.where(rows == cols, beta / math.sqrt(2.0), beta)


def features(x, beta: float):
    """φ(x) = [1, √β·x, w_ij·x_i·x_j (i ≤ j)], L×C(d+2, 2)."""
    rows, cols, w = pair_weights(x.shape[1], beta)
    return np.hstack([np.ones((x.shape[0], 1)), math.sqrt(beta) * x, w * x[:, rows] * x[:, cols]])


def features_backward(x, beta: float, grad):
    """∂ℓ/∂X given ∂ℓ/∂φ(X): reverse mode through the monomials (almora's productFeaturesBackward)."""
    d = x.shape[1]
    rows, cols, w = pair_weights(d, beta)
    g = w * grad[:, 1 + d:]
    # ∂(x_i·x_j)/∂x_i = x_j and ∂/∂x_j = x_i (on the diagonal the two add to 2·x_i); the one-hot
    # rows send each pair's term to its variable through one matmul instead of a scatter.
    onehot = np.eye(d)
    return math.sqrt(beta) * grad[:, 1:1 + d] + (g * x[:, cols]) @ onehot[rows] + (g * x[:, rows]) @ onehot[cols]


def face_split(a, b):
    """A ⊘ B: row i is A_i ⊗ B_i."""
    return (a[:, :, None] * b[:, None, :]).reshape(a.shape[0], -1)


def face_split_apply(left, right, m):
    """(A⊘C)·(B⊘V)ᵀ·M for left = (A, C), right = (B, V), without the L×(k·d) factors:
    A·(Bᵀ·(V⊘M)), then row i reduced with C_i (almora's faceSplitApply, non-causal)."""
    (a, c), (b, v) = left, right
    blocks = a @ (b.T @ face_split(v, m))
    return np.einsum("il,iln->in", c, blocks.reshape(a.shape[0], c.shape[1], m.shape[1]))


def fast_forward(q, k, v, beta: float):
    """U₁ = φ(Q), V₁ = φ(K), 1/D̂ = 1/(U₁·(V₁ᵀ·1)) and Ô = D̂⁻¹·U₁·(V₁ᵀ·V), never L×L."""
    u, w = features(q, beta), features(k, beta)
    sums = u @ w.sum(axis=0)
    if not (sums > 0).all():
        raise ValueError("a row of the approximate softmax sums to ≤ 0")
    inverse = (1.0 / sums)[:, None]
    return u, w, inverse, inverse * (u @ (w.T @ v))


def chained_head(q, k, v, y, beta: float):
    """The paper's chain (Theorems 3.1 / A.1): p₁ = f̂ ∘ (c·Vᵀ) as (D̂⁻¹U₁ ⊘ c)·(V₁ ⊘ V)ᵀ,
    diag(p₁·1) = ⟨c_i, Ô_i⟩; ∂Q = β(p₁K − diag·f̂K), ∂K = β(p₁ᵀQ − f̂ᵀ·diag·Q), ∂V = f̂ᵀc."""
    u, w, inverse, output = fast_forward(q, k, v, beta)
    c = output - y
    p2 = np.einsum("ij,ij->i", c, output)[:, None]
    left, right = (inverse * u, c), (w, v)
    apply_f = lambda m: inverse * (u @ (w.T @ m))  # noqa: E731
    apply_ft = lambda m: w @ (u.T @ (inverse * m))  # noqa: E731
    dq = beta * (face_split_apply(left, right, k) - p2 * apply_f(k))
    dk = beta * (face_split_apply(right, left, q) - apply_ft(p2 * q))
    return dq, dk, apply_ft(c)


def autodiff_head(q, k, v, y, beta: float):
    """Reverse mode through Ô = D̂⁻¹N, N = U₁V₁ᵀV, D̂ = U₁V₁ᵀ1: ∂N = D̂⁻¹c, ∂D̂ = −⟨c_i, Ô_i⟩/D̂_i,
    ∂U₁ = ∂N·(VᵀV₁) + ∂D̂·(1ᵀV₁), ∂V₁ = V·(∂NᵀU₁) + 1·(∂D̂ᵀU₁), ∂V = V₁·(U₁ᵀ∂N), then the features."""
    u, w, inverse, output = fast_forward(q, k, v, beta)
    c = output - y
    dn = inverse * c
    dd = -inverse * np.einsum("ij,ij->i", c, output)[:, None]
    du = dn @ (v.T @ w) + dd @ w.sum(axis=0, keepdims=True)
    dw = v @ (dn.T @ u) + (dd.T @ u)
    return features_backward(q, beta, du), features_backward(k, beta, dw), w @ (u.T @ dn)


def lora_gradients(problem: dict, method: str, block: int) -> dict:
    """Project, run one head of `method`, then the LoRA chain rule: G_W = Xᵀ·∂(XW), ∂A = s·Bᵀ·G_W,
    ∂B = s·G_W·Aᵀ, s = α/r."""
    x, adapters = problem["x"], problem["adapters"]
    scaling = problem["alpha"] / next(iter(adapters.values()))["a"].shape[0]
    w = effective_weights(problem["weights"], adapters, scaling)
    q, k, v = x @ w["q"], x @ w["k"], x @ w["v"]
    head = {"exact": functools.partial(exact_head, block=block), "fast chained g2": chained_head, "fast autodiff g2": autodiff_head}[method]
    dq, dk, dv = head(q, k, v, problem["y"], problem["beta"])
    grads = {}
    for t, projected in zip(TARGETS, (dq, dk, dv)):
        if t in adapters:
            g = x.T @ projected
            grads[t] = {"a": scaling * adapters[t]["b"].T @ g, "b": scaling * g @ adapters[t]["a"].T}
    return grads


def main() -> None:
    spec = json.load(sys.stdin)
    blas = loaded_blas()
    if blas["handle"] is not None and spec.get("threads"):
        blas["handle"].openblas_set_num_threads(int(spec["threads"]))
    threads = blas["handle"].openblas_get_num_threads() if blas["handle"] is not None else None
    rng = np.random.default_rng(spec["seed"])
    targets = ["q", "v"] if spec["adaptation"] == "partial" else ["q", "k", "v"]
    inputs = spec.get("inputs", {})
    block = spec.get("blockSize", 128)
    results, last = {}, {}
    for length in spec["lengths"]:
        given = inputs.get(str(length))
        problem = given_inputs(given) if given else generated_inputs(rng, length, spec["d"], spec["rank"], targets, spec.get("gamma", 0.5))
        results[str(length)] = {}
        for method in spec["methods"]:
            if method in last:
                previous_length, previous_seconds = last[method]
                predicted = previous_seconds * (length / previous_length) ** GROWTH[method]
                if predicted > spec["budget"]:
                    results[str(length)][method] = {"error": f"skipped: predicted {predicted:.1f} s per run > budget {spec['budget']} s"}
                    continue
            # A first run that is long counts as the one sample; a short one warms up and is dropped.
            t0 = time.perf_counter()
            grads = lora_gradients(problem, method, block)
            first = time.perf_counter() - t0
            times = [first]
            if first <= 5:
                times = []
                for _ in range(spec["repeats"]):
                    t0 = time.perf_counter()
                    grads = lora_gradients(problem, method, block)
                    times.append(time.perf_counter() - t0)
            times.sort()
            median = times[len(times) // 2]
            last[method] = (length, median)
            results[str(length)][method] = {
                "median": median,
                "times": times,
                "grads": {t: {"a": g["a"].tolist(), "b": g["b"].tolist()} for t, g in grads.items()},
            }
    json.dump({"numpy": np.__version__, "blas": {"name": blas["name"], "library": blas["library"], "config": blas["config"], "threads": threads}, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
