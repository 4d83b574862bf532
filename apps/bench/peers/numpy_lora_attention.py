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

A session, so that its timings interleave with almora's repeat by repeat: one JSON request per line
on stdin, one JSON reply per line on stdout.
  {"threads": n|null, "blockSize": rows}   first: OpenBLAS threads (null: its own choice) and query
                                          rows per exact block (almora's 128); replies with the numpy
                                          version and the BLAS it loaded (read from the process's own
                                          memory map, not from build flags) with its thread count.
  {"load": {"x", "y", "weights": {"q","k","v"}, "adapters": {t: {"a","b"}}, "alpha", "beta"}}
                                          the problem to time next (matrices as lists of rows).
  {"run": method}                         runs the loaded problem once; replies with its seconds and the
                                          adapter gradients {t: {"a", "b"}} (tiny: r×d and d×r).
A request that fails replies {"error": message}; end of input ends the session.
"""
import ctypes
import functools
import traceback
import json
import math
import sys
import time

import numpy as np

TARGETS = ("q", "k", "v")


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
    setup = json.loads(sys.stdin.readline())
    blas = loaded_blas()
    if blas["handle"] is not None and setup.get("threads"):
        blas["handle"].openblas_set_num_threads(int(setup["threads"]))
    threads = blas["handle"].openblas_get_num_threads() if blas["handle"] is not None else None
    block = setup.get("blockSize", 128)
    reply({"numpy": np.__version__, "blas": {"name": blas["name"], "library": blas["library"], "config": blas["config"], "threads": threads}})
    problem = None
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if "load" in request:
                problem = given_inputs(request["load"])
                reply({"loaded": len(problem["x"])})
            elif problem is None:
                reply({"error": "run before load"})
            else:
                t0 = time.perf_counter()
                grads = lora_gradients(problem, request["run"], block)
                seconds = time.perf_counter() - t0
                reply({"seconds": seconds, "grads": {t: {"a": g["a"].tolist(), "b": g["b"].tolist()} for t, g in grads.items()}})
        except Exception as error:  # noqa: BLE001 — any failure is this request's answer, not the session's end
            reply({"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc(limit=3)})


def reply(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
