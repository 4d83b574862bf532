import { assertFinite, InvalidArgumentError, type Matrix, ShapeError } from '@almora/tensor';
import { runLater, runNow } from './head.js';
import { type AttentionCoreOptions, type AttentionSequence, planAttention } from './plan.js';
import type { AttentionReport } from './report.js';
import { type CoreGradients, coreBackward, coreForward, releaseHeads } from './run.js';

/** ∂loss/∂Q, ∂K, ∂V from {@link AttentionResult.backward}, with a certified error bound when one holds. */
export interface AttentionGradients<M> {
  /** ∂loss/∂Q, the shape of Q. */
  dq: M;
  /** ∂loss/∂K, the shape of K. */
  dk: M;
  /** ∂loss/∂V, the shape of V. */
  dv: M;
  /**
   * Entrywise upper bounds on the error of dq, dk, dv as the vector-Jacobian product for the given
   * upstream gradient — that is, against the exact backward pass applied to the same ∂O — when
   * the computation ran in float64 (either fast variant; rigorous, worst-case; exact heads
   * contribute zeros); undefined otherwise. It does not cover error already in ∂O: in training ∂O
   * is computed from the approximate output, whose own error is bounded by the certified attention
   * error in the report.
   */
  bound:
    | {
        /** Bound on |dq − ∂Q|. */
        dq: M;
        /** Bound on |dk − ∂K|. */
        dk: M;
        /** Bound on |dv − ∂V|. */
        dv: M;
      }
    | undefined;
}

/** The attention core's forward result: output, report, and the vector-Jacobian product. */
export interface AttentionResult<M> {
  /** [softmax(β·Q_h·K_hᵀ [+ mask])·V_h]_h, heads side by side (an array for a batch). */
  output: M;
  /** What was decided for every head, and why. */
  report: AttentionReport;
  /**
   * ∂loss/∂Q, ∂K, ∂V for the upstream gradient ∂loss/∂output (its shape), by the path each head
   * took. Call it once: it releases what the forward pass kept.
   */
  backward(outputGradient: M): AttentionGradients<M>;
  /** Releases what the forward pass kept without computing gradients (inference). */
  dispose(): void;
}

/** {@link AttentionResult} for devices whose reads are asynchronous (WebGPU). */
export interface AsyncAttentionResult<M> {
  /** As {@link AttentionResult.output}. */
  output: M;
  /** As {@link AttentionResult.report}. */
  report: AttentionReport;
  /** As {@link AttentionResult.backward}, awaited. */
  backward(outputGradient: M): Promise<AttentionGradients<M>>;
  /** As {@link AttentionResult.dispose}. */
  dispose(): void;
}

/** The upstream gradient of a vjp as a list, checked against the outputs it belongs to. */
export function upstreamOf(outputGradient: Matrix | readonly Matrix[], outputs: readonly Matrix[]): Matrix[] {
  const upstream = asList(outputGradient, 'outputGradient').list;
  checkUpstream(upstream, outputs, 'outputGradient');
  return upstream;
}

/** Checks upstream gradients against the outputs they belong to. */
function checkUpstream(upstream: readonly Matrix[], outputs: readonly Matrix[], name: string): void {
  if (upstream.length !== outputs.length) throw new ShapeError(`${name} has ${upstream.length} sequences but the forward pass had ${outputs.length}`);
  upstream.forEach((g, n) => {
    const where = outputs.length === 1 ? '' : ` of sequence ${n}`;
    const out = outputs[n];
    if (!g || typeof g.rows !== 'number' || !g.data) throw new InvalidArgumentError(`${name}${where} is not a matrix`);
    if (g.rows !== out.rows || g.cols !== out.cols) throw new ShapeError(`${name}${where} is ${g.rows}×${g.cols} but the output is ${out.rows}×${out.cols}`);
    if (g.dtype !== out.dtype) throw new InvalidArgumentError(`${name}${where} is ${g.dtype} but the output is ${out.dtype}`);
    assertFinite(g, `${name}${where}`);
  });
}

/** A batch or a single matrix, as a list, and back. */
export function asList(value: Matrix | readonly Matrix[], name: string): { list: Matrix[]; single: boolean } {
  if (Array.isArray(value)) return { list: [...(value as readonly Matrix[])], single: false };
  if (!value || typeof (value as Matrix).rows !== 'number') throw new InvalidArgumentError(`${name} is not a matrix or an array of matrices`);
  return { list: [value as Matrix], single: true };
}

/**
 * Guards a vjp: the first `take` (backward) or `dispose` releases what the forward pass kept; a
 * second backward is a typed error, a second dispose does nothing.
 */
export function once(release: () => void = () => {}): { take(): void; dispose(): void } {
  let done = false;
  return {
    take() {
      if (done)
        throw new InvalidArgumentError(
          'backward was already called (or the result disposed): what the forward pass kept is released; run the forward pass again',
        );
      done = true;
    },
    dispose() {
      if (done) return;
      done = true;
      release();
    },
  };
}

function sequencesOf(
  q: Matrix | readonly Matrix[],
  k: Matrix | readonly Matrix[],
  v: Matrix | readonly Matrix[],
): { sequences: AttentionSequence[]; single: boolean } {
  const [qs, ks, vs] = [asList(q, 'q'), asList(k, 'k'), asList(v, 'v')];
  if (qs.single !== ks.single || qs.single !== vs.single || qs.list.length !== ks.list.length || qs.list.length !== vs.list.length) {
    throw new ShapeError(`q, k and v must all be matrices or all be batches of one length; got ${qs.list.length}, ${ks.list.length} and ${vs.list.length}`);
  }
  return { sequences: qs.list.map((qn, n) => ({ q: qn, k: ks.list[n], v: vs.list[n] })), single: qs.single };
}

type Unbatched<M> = M extends readonly Matrix[] ? Matrix[] : Matrix;

function shaped<M>(list: Matrix[], single: boolean): M {
  return (single ? list[0] : list) as M;
}

function shapedGradients<M>(g: CoreGradients, single: boolean): AttentionGradients<M> {
  return {
    dq: shaped<M>(g.dq, single),
    dk: shaped<M>(g.dk, single),
    dv: shaped<M>(g.dv, single),
    bound: g.bound && { dq: shaped<M>(g.bound.dq, single), dk: shaped<M>(g.bound.dk, single), dv: shaped<M>(g.bound.dv, single) },
  };
}

/**
 * The attention core as a differentiable function: softmax(β·Q_h·K_hᵀ [+ causal mask])·V_h for
 * every head h (column groups of Q, K, V), with a `backward` that takes any upstream gradient.
 *
 * Each head is planned once — Γ and the certified range of the q and k that actually enter its
 * softmax, the degree and rank of the polynomial method, the predicted cost of each path — and
 * decided: 'exact' (blocked: the forward keeps each block's probabilities for the backward while
 * they fit `probabilityBudget`, and beyond it the backward recomputes them, flash style, so no L×L
 * matrix is ever required), 'fast' (the low-rank softmax f̂ = D̂⁻¹U₁V₁ᵀ, kept as factors for the
 * backward; the paper's chain with c = ∂O), or 'auto' (fast for a head only where its certified
 * bound meets ε and it is predicted cheaper). Models that transform Q and K between projection and
 * attention (rotary embeddings, q_norm/k_norm) call this core after the transform.
 *
 * Q and K are L×(H·d_h), V is L_k×(H·d_v); arrays of them are a batch. Needs a backend that reads
 * synchronously (the CPU, gpu.js's sync modes); {@link attentionAsync} serves the rest.
 *
 * @example
 * ```ts
 * import { attention } from '@almora/lora';
 * import { Rng, randomNormal, scale } from '@almora/tensor';
 *
 * const rng = new Rng(3);
 * // Two heads of width 8: Q, K, V are L×(2·8); queries and keys already projected (and rotated, normed…).
 * const [q, k, v] = [0, 1, 2].map(() => scale(randomNormal(2048, 16, rng), 0.3));
 * const { output, report, backward } = attention(q, k, v, { heads: 2, causal: true, method: 'auto' });
 * const { dq, dk, dv } = backward(randomNormal(2048, 16, rng));
 * console.log(output.shape, dq.shape, dk.shape, dv.shape, report.heads.map((h) => h.chosen)); // [ 2048, 16 ] … and each head's path; report.heads[h].reason says why
 * ```
 */
export function attention<M extends Matrix | readonly Matrix[]>(q: M, k: M, v: M, options: AttentionCoreOptions = {}): AttentionResult<Unbatched<M>> {
  const { sequences, single } = sequencesOf(q, k, v);
  const core = planAttention(sequences, options);
  const { outputs, states } = runNow(coreForward(core));
  const guard = once(() => releaseHeads(core, states));
  return {
    output: shaped(outputs, single),
    report: core.report,
    backward(outputGradient) {
      const upstream = upstreamOf(outputGradient, outputs);
      guard.take();
      return shapedGradients(runNow(coreBackward(core, states, upstream, false)), single);
    },
    dispose: guard.dispose,
  };
}

/** {@link attention} for any backend, asynchronous devices (WebGPU) included: every read-back awaited. */
export async function attentionAsync<M extends Matrix | readonly Matrix[]>(
  q: M,
  k: M,
  v: M,
  options: AttentionCoreOptions = {},
): Promise<AsyncAttentionResult<Unbatched<M>>> {
  const { sequences, single } = sequencesOf(q, k, v);
  const core = planAttention(sequences, options);
  const { outputs, states } = await runLater(coreForward(core));
  const guard = once(() => releaseHeads(core, states));
  return {
    output: shaped(outputs, single),
    report: core.report,
    async backward(outputGradient) {
      const upstream = upstreamOf(outputGradient, outputs);
      guard.take();
      return shapedGradients(await runLater(coreBackward(core, states, upstream, false)), single);
    },
    dispose: guard.dispose,
  };
}
