import { type Backend, colSums, type DeviceMatrix, map, type Matrix, scoped, zeros } from '@almora/tensor';
import { type HeadGradients, type HeadInput, readBack, type Reading } from './head.js';
import { applyFTransposedEach, type LowRankSoftmax } from './softmax-factors.js';

function rowNorms(m: Matrix): Float64Array {
  const out = new Float64Array(m.rows);
  for (let i = 0; i < m.rows; i++) {
    let s = 0;
    for (let j = 0; j < m.cols; j++) s += m.data[m.offset + i * m.stride + j] ** 2;
    out[i] = Math.sqrt(s);
  }
  return out;
}

/** The certified entrywise relative errors a fast head's backward is built from. */
export interface BackwardFactors {
  /** η: |f̂_ij − f_ij| ≤ η·f_ij for the softmax the forward pass used. */
  softmax: number;
  /** η′: the same for the factor the backward multiplies ∂loss/∂S by in f's place — f̂ (η′ = η) for chained, p′(S)/D̂ for autodiff. */
  backward: number;
  /** The keys the backward's ∂Q sums over: K for chained (its ∂S rows sum to 0, so any shift is the same), the centered K̃ for autodiff. */
  keys: Matrix;
  /** Autodiff with centered keys projects ∂K̃ to ∂K = (I − 11ᵀ/L)·∂K̃, which the bound follows. */
  projected: boolean;
}

/**
 * A rigorous entrywise bound on the error of the fast gradients of one head, from the certified
 * factors η and η′ (see {@link BackwardFactors}), data norms, and a bound e on ‖ĉ_i − c_i‖₂, the
 * error of the upstream gradient itself: 0 when ∂O is given, ηa when it is computed from the
 * output (`upstreamFromOutput`; the paper's loss, where c = Ô − Y inherits Ô's error).
 *
 * With a = max_j‖v_j‖₂: ‖Ô_i − O_i‖ ≤ ηa. Exact ∂loss/∂S is p_ij = f_ij·c_i·(v_j − O_i); the fast
 * path's is p̂_ij = g_ij·ĉ_i·(v_j − Ô_i) with |g_ij − f_ij| ≤ η′f_ij. Using ‖v_j − Ô_i‖ ≤ 2a (Ô_i is
 * a convex combination of the v_j):
 *   |p̂_ij − p_ij| ≤ f_ij·ρ_i,  ρ_i = (2η′ + η)·a‖ĉ_i‖ + (2+η)a·e.
 * Hence |∂Q̂_il − ∂Q_il| ≤ β·ρ_i·max_j|K_jl|, |∂K̂ − ∂K| ≤ β/(1−η)·f̂ᵀ(diag(ρ)|Q|) (f ≤ f̂/(1−η)),
 * and |∂V̂ − ∂V| ≤ f̂ᵀ(η|ĉ| + e)/(1−η). η and η′ include the rounding of the low-rank products
 * (the kernels' RoundingModel); the O(L·d) steps after them round at ~1e-16 relative in float64,
 * far below any η, and are not added. Float32 gets no gradient bound.
 */
export function* gradientBound<T extends DeviceMatrix>(
  backend: Backend<T>,
  input: HeadInput,
  f: LowRankSoftmax<T>,
  c: Matrix,
  held: { q: T; c: T },
  factors: BackwardFactors,
  upstreamFromOutput: boolean,
): Reading<HeadGradients> {
  const { q, v, beta } = input;
  const { softmax: eta, backward: etaBackward, keys: k } = factors;
  if (!(eta < 1) || !Number.isFinite(etaBackward)) {
    // The softmax certificate is void (δ ≥ 1): nothing can be said about the gradients.
    const unbounded = (m: Matrix) => map(m, () => Number.POSITIVE_INFINITY);
    return { dq: unbounded(q), dk: unbounded(k), dv: unbounded(v) };
  }
  const a = rowNorms(v).reduce((best, n) => Math.max(best, n), 0);
  const upstreamError = upstreamFromOutput ? eta * a : 0;
  const rho = rowNorms(c);
  for (let i = 0; i < rho.length; i++) rho[i] = (2 * etaBackward + eta) * a * rho[i] + (2 + eta) * a * upstreamError;
  const keyColumnMax = new Float64Array(k.cols);
  for (let j = 0; j < k.rows; j++) {
    for (let l = 0; l < k.cols; l++) keyColumnMax[l] = Math.max(keyColumnMax[l], Math.abs(k.data[k.offset + j * k.stride + l]));
  }
  const dq = zeros(q.rows, q.cols, { dtype: 'float64' });
  for (let i = 0; i < q.rows; i++) for (let l = 0; l < q.cols; l++) dq.data[i * q.cols + l] = beta * rho[i] * keyColumnMax[l];
  const inflate = 1 / (1 - eta);
  // Both f̂ᵀ products in one pass over f̂'s factors, their operands made on the backend from the Q
  // and ĉ it holds: f̂ᵀ·(β/(1−η)·diag(ρ)|Q|) and f̂ᵀ·((η|ĉ| + e)/(1−η)).
  const queryFactors = zeros(q.rows, 1, { dtype: 'float64' });
  for (let i = 0; i < q.rows; i++) queryFactors.data[i] = beta * inflate * rho[i];
  const scope = scoped(backend);
  try {
    const queryTerm = scope.scaleRows(scope.abs(held.q), scope.upload(queryFactors, held.q));
    const upstreamTerm = scope.affine(scope.affine(scope.abs(held.c), eta, upstreamError), inflate);
    const [keyBound, valueBound] = applyFTransposedEach(scope, f, [queryTerm, upstreamTerm]);
    const raw = yield* readBack(backend, keyBound, 'float64');
    const dv = yield* readBack(backend, valueBound, 'float64');
    let dk = raw;
    if (factors.projected) {
      // |((I − 11ᵀ/L)·E)_jl| ≤ |E_jl| + mean_j|E_jl|.
      const means = colSums(dk).map((sum) => sum / dk.rows);
      dk = map(dk, (x, _i, l) => x + means[l]);
    }
    return { dq, dk, dv };
  } finally {
    scope.releaseAll();
  }
}
