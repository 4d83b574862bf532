import { type Backend, type DeviceMatrix, fromFlat, type Matrix, scoped, type ScopedBackend, ShapeError } from '@almora/tensor';
import type { ProductTree } from './features.js';
import type { FusedKernels } from './fused.js';

/**
 * What a causal mask adds to a hidden score before the row maximum: hidden entries fall far below
 * every visible one, so the maximum is the visible one and exp gives exactly 0. Finite, so it fits
 * float32 too.
 */
const HIDDEN = -1e30;

/** Runs `body` on a scope of `backend` and releases everything it made but its result. */
function compose<T extends DeviceMatrix>(backend: Backend<T>, body: (scope: ScopedBackend<T>) => T): T {
  const scope = scoped(backend);
  let out: T | undefined;
  try {
    out = body(scope);
    return out;
  } finally {
    scope.releaseAll(out === undefined ? [] : [out]);
  }
}

/** A host rows×cols matrix, zero but for `weight(c)` at (rowOf(c), c) in every column c: a selection (or placement) matrix. */
function selection(rows: number, cols: number, rowOf: (c: number) => number, weight: (c: number) => number = () => 1): Matrix {
  const data = new Float64Array(rows * cols);
  for (let c = 0; c < cols; c++) data[rowOf(c) * cols + c] = weight(c);
  return fromFlat(rows, cols, data);
}

/** A rows×cols matrix of ones in the precision of `like`. */
function ones<T extends DeviceMatrix>(scope: ScopedBackend<T>, rows: number, cols: number, like: T): T {
  return scope.affine(scope.zeros(rows, cols, like), 0, 1);
}

/** c·1ᵀ: the column c repeated over `cols` columns, an outer product with a row of ones (exact). */
function broadcastColumn<T extends DeviceMatrix>(scope: ScopedBackend<T>, c: T, cols: number): T {
  return scope.matmul(c, ones(scope, 1, cols, c));
}

/**
 * The monomials of a {@link ProductTree} by depth: level ℓ holds the monomials of degree ℓ (level 0
 * the constant), with the selection matrices that make it from the level below —
 * M_ℓ = (M_ℓ₋₁·P_ℓ) ∘ (X·V_ℓ), P_ℓ picking each monomial's parent and V_ℓ its variable — and W_ℓ,
 * which places level ℓ's weighted columns among all k features: Φ = Σ_ℓ M_ℓ·W_ℓ.
 */
interface TreeLevel {
  /** The monomials of this level, by index in the tree. */
  members: number[];
  /** P_ℓ (size of the level below × size of this one). */
  parents: Matrix;
  /** V_ℓ (d × size of this level). */
  variables: Matrix;
  /** W_ℓ (size of this level × k). */
  placement: Matrix;
}

/** The levels of `tree` over d variables; a parent comes before its children (parents[a] < a), as the CPU kernel also assumes. */
function treeLevels(tree: ProductTree, d: number): TreeLevel[] {
  const k = tree.parents.length;
  const depth = new Int32Array(k);
  const position = new Int32Array(k);
  const members: number[][] = [[0]];
  for (let a = 1; a < k; a++) {
    depth[a] = depth[tree.parents[a]] + 1;
    (members[depth[a]] ??= []).push(a);
    position[a] = members[depth[a]].length - 1;
  }
  return members.map((level, l) => ({
    members: level,
    parents: selection(l === 0 ? 0 : members[l - 1].length, l === 0 ? 0 : level.length, (c) => position[tree.parents[level[c]]]),
    variables: selection(l === 0 ? 0 : d, l === 0 ? 0 : level.length, (c) => tree.variables[level[c]]),
    placement: selection(
      level.length,
      k,
      (a) => (depth[a] === l ? position[a] : 0),
      (a) => (depth[a] === l ? tree.weights[a] : 0),
    ),
  }));
}

/** M_0, …, M_top: the unweighted monomial columns of each level, on the scope. */
function monomials<T extends DeviceMatrix>(scope: ScopedBackend<T>, x: T, levels: TreeLevel[]): T[] {
  const out = [ones(scope, x.rows, 1, x)];
  for (let l = 1; l < levels.length; l++) {
    out.push(scope.hadamard(scope.matmul(out[l - 1], scope.upload(levels[l].parents, x)), scope.matmul(x, scope.upload(levels[l].variables, x))));
  }
  return out;
}

/**
 * The default of every {@link FusedKernels} on `backend`, composed only from its core primitives
 * (selection matrices are built on the host and uploaded in the operands' precision). Correct on any
 * backend, and slower than a fused kernel: each trades a gather for a matmul by a 0/1 matrix.
 */
export function composedKernels<T extends DeviceMatrix>(backend: Backend<T>): FusedKernels<T> {
  return {
    faceSplit(a, b) {
      if (a.rows !== b.rows) throw new ShapeError(`faceSplit: A is ${a.rows}×${a.cols} and B is ${b.rows}×${b.cols}; row counts must agree`);
      const [p, q] = [a.cols, b.cols];
      // (A·E)∘(B·F): E repeats column l of A q times, F tiles B p times, so column l·q + j is A_il·B_ij.
      const e = selection(p, p * q, (c) => Math.floor(c / q));
      const f = selection(q, p * q, (c) => c % q);
      return compose(backend, (s) => s.hadamard(s.matmul(a, s.upload(e, a)), s.matmul(b, s.upload(f, a))));
    },
    faceSplitReduce(weights, blocks) {
      const d = weights.cols;
      if (blocks.rows !== weights.rows || blocks.cols % Math.max(d, 1) !== 0) {
        throw new ShapeError(
          `faceSplitReduce: weights are ${weights.rows}×${d} and blocks ${blocks.rows}×${blocks.cols}; blocks need the same rows and a multiple of ${d} columns`,
        );
      }
      const n = d === 0 ? 0 : blocks.cols / d;
      if (n === 0) return backend.zeros(weights.rows, 0, weights);
      // ((W·E)∘blocks)·Gᵀ: E spreads W_il over block l's n columns, G sums the d blocks column by column.
      const e = selection(d, d * n, (c) => Math.floor(c / n));
      const g = selection(n, d * n, (c) => c % n);
      return compose(backend, (s) => s.matmul(s.hadamard(s.matmul(weights, s.upload(e, weights)), blocks), s.upload(g, weights), { transposeB: true }));
    },
    productFeatures(x, tree) {
      const levels = treeLevels(tree, x.cols);
      return compose(backend, (s) => {
        const m = monomials(s, x, levels);
        const out = s.zeros(x.rows, tree.parents.length, x);
        for (let l = 0; l < levels.length; l++) s.accumulate(out, s.matmul(m[l], s.upload(levels[l].placement, x)));
        return out;
      });
    },
    productFeaturesBackward(x, tree, featureGradient) {
      const k = tree.parents.length;
      if (featureGradient.rows !== x.rows || featureGradient.cols !== k) {
        throw new ShapeError(`feature gradient must be ${x.rows}×${k}, got ${featureGradient.rows}×${featureGradient.cols}`);
      }
      const levels = treeLevels(tree, x.cols);
      // Reverse mode over the levels, from the top: with H_ℓ = ∂ℓ/∂M_ℓ = G·W_ℓᵀ + what level ℓ+1 sends down,
      // ∂X += (H_ℓ ∘ M_ℓ₋₁P_ℓ)·V_ℓᵀ and level ℓ−1 receives (H_ℓ ∘ X·V_ℓ)·P_ℓᵀ.
      return compose(backend, (s) => {
        const m = monomials(s, x, levels);
        const out = s.zeros(x.rows, x.cols, x);
        let carried: T | undefined;
        for (let l = levels.length - 1; l >= 1; l--) {
          const own = s.matmul(featureGradient, s.upload(levels[l].placement, x), { transposeB: true });
          const h = carried ? s.add(own, carried) : own;
          const parents = s.upload(levels[l].parents, x);
          const variables = s.upload(levels[l].variables, x);
          s.accumulate(out, s.matmul(s.hadamard(h, s.matmul(m[l - 1], parents)), variables, { transposeB: true }));
          carried = s.matmul(s.hadamard(h, s.matmul(x, variables)), parents, { transposeB: true });
        }
        return out;
      });
    },
    attentionProbabilities(queries, keys, beta, causalStart) {
      if (causalStart !== undefined && !(Number.isInteger(causalStart) && causalStart >= 0))
        throw new ShapeError(`attentionProbabilities: causalStart must be an integer ≥ 0, got ${causalStart}`);
      if (queries.cols !== keys.cols)
        throw new ShapeError(`attentionProbabilities: queries are ${queries.rows}×${queries.cols} and keys ${keys.rows}×${keys.cols}`);
      const [rows, cols] = [queries.rows, keys.rows];
      return compose(backend, (s) => {
        let z = s.affine(s.matmul(queries, keys, { transposeB: true }), beta);
        // The hidden entries j > causalStart + i, pushed far below every visible one.
        if (causalStart !== undefined) z = s.add(z, s.affine(s.triangle(ones(s, rows, cols, queries), 'upper', causalStart + 1), HIDDEN));
        const e = s.exp(s.sub(z, broadcastColumn(s, s.rowMax(z), cols)));
        return s.scaleRows(e, s.reciprocal(s.rowSums(e)));
      });
    },
    attentionScoresGradient(probabilities, outputGradient, values, rowDots) {
      if (rowDots.rows !== probabilities.rows || rowDots.cols !== 1)
        throw new ShapeError(`attentionScoresGradient: expected a ${probabilities.rows}×1 column of row dots, got ${rowDots.rows}×${rowDots.cols}`);
      return compose(backend, (s) => {
        const scores = s.matmul(outputGradient, values, { transposeB: true });
        return s.hadamard(probabilities, s.sub(scores, broadcastColumn(s, rowDots, scores.cols)));
      });
    },
  };
}
