import { centeredKeys } from '@almora/kernels';
import { addInto, assertFinite, type Backend, type DeviceMatrix, type Matrix, sliceCols, sub, zeros } from '@almora/tensor';
import { autodiffBackward } from './autodiff.js';
import { type BackwardFactors, gradientBound } from './bound.js';
import { chainedBackward } from './chained.js';
import { exactBackwardHead, type ExactForward, exactForwardHead, exactLossHead } from './exact.js';
import { type HeadGradients, type HeadInput, readBack, type Reading } from './head.js';
import type { ResolvedOptions } from './options.js';
import type { AttentionSequence, CorePlan, HeadLayout, HeadPlan } from './plan.js';
import { applyF, disposeSoftmax, type LowRankSoftmax, softmaxFactors } from './softmax-factors.js';

/** Gradients of every sequence at full width, as the drivers return them. */
export interface CoreGradients {
  /** ∂Q per sequence. */
  dq: Matrix[];
  /** ∂K per sequence. */
  dk: Matrix[];
  /** ∂V per sequence. */
  dv: Matrix[];
  /** Entrywise error bounds, when every fast head is certified. */
  bound: { dq: Matrix[]; dk: Matrix[]; dv: Matrix[] } | undefined;
}

/** What the forward pass keeps of one head for its backward pass, on the backend. */
export interface HeadState<T extends DeviceMatrix> {
  /** The head's plan. */
  plan: HeadPlan;
  /** Q, K, V on the backend. */
  device: HeadInput<T>;
  /** f̂'s factors, on the fast path. */
  factors: LowRankSoftmax<T> | undefined;
  /** O and the probabilities kept, on the exact path. */
  exact: ExactForward<T> | undefined;
  /** O on the backend. */
  output: T;
  /** O on the host. */
  hostOutput: Matrix;
}

/** A head's state while its forward pass is still being made (or was stopped half-way). */
type PartialHeadState<T extends DeviceMatrix> = Omit<HeadState<T>, 'output' | 'hostOutput'> & { output?: T };

/** Uploads one head's inputs. */
function upload<T extends DeviceMatrix>(backend: Backend<T>, plan: HeadPlan, layout: HeadLayout): HeadInput<T> {
  return { q: backend.upload(plan.q), k: backend.upload(plan.k), v: backend.upload(plan.v), beta: layout.beta, causal: layout.causal };
}

/** Reads a head's result back in the inputs' dtype, checked finite (a float32 device can overflow where float64 does not). */
function* readChecked<T extends DeviceMatrix>(backend: Backend<T>, handle: T, like: Matrix, name: string): Reading<Matrix> {
  const host = yield* readBack(backend, handle, like.dtype);
  assertFinite(host, `the ${backend.name} backend's ${name}`);
  return host;
}

/** One head's forward pass: Ô = f̂·V from the low-rank factors (kept), or the exact blocked O (with its probabilities when the plan keeps them). */
function* headForward<T extends DeviceMatrix>(backend: Backend<T>, plan: HeadPlan, layout: HeadLayout, o: ResolvedOptions): Reading<HeadState<T>> {
  const state: PartialHeadState<T> = { plan, device: upload(backend, plan, layout), factors: undefined, exact: undefined };
  try {
    // Autodiff's unmasked backward goes block by block, so its features need never be whole.
    if (plan.path === 'fast')
      state.factors = yield* softmaxFactors(backend, state.device, plan.k, plan.approximation, layout.beta, layout.causal, plan.variant === 'autodiff');
    else state.exact = exactForwardHead(backend, state.device, o.blockSize, plan.keepsProbabilities);
    const output = state.exact ? state.exact.output : applyF(backend, state.factors!, state.device.v);
    state.output = output;
    return { ...state, output, hostOutput: yield* readChecked(backend, output, plan.q, 'output') };
  } catch (error) {
    releaseHead(backend, state);
    throw error;
  }
}

/** Releases what the forward pass of one head made (also when it stopped half-way). */
function releaseHead<T extends DeviceMatrix>(backend: Backend<T>, state: PartialHeadState<T>): void {
  if (state.factors) disposeSoftmax(backend, state.factors);
  const made = [
    state.device.q,
    state.device.k,
    state.device.v,
    ...(state.exact ? [state.exact.output, ...(state.exact.probabilities ?? [])] : []),
    ...(state.factors && state.output ? [state.output] : []),
  ];
  for (const handle of made) backend.dispose(handle);
}

/** Releases what the forward pass kept of every head, for a caller that will not run backward. */
export function releaseHeads(core: CorePlan, states: readonly HeadState<DeviceMatrix>[]): void {
  for (const state of states) releaseHead(core.options.backend, state);
}

/**
 * Takes one head's ∂Q, ∂K, ∂V as handles of the backend (released once it returns) with the head's
 * certified gradient bound on the host, if any: reading them back, or using them where they are.
 */
export type HeadSink<T extends DeviceMatrix> = (plan: HeadPlan, grads: HeadGradients<T>, bound: HeadGradients | undefined) => Reading<void>;

/**
 * One head's backward pass for the upstream gradient c (host, this head's columns), with the
 * certified gradient bound when it holds (either fast variant, float64), handed to `sink`.
 * Releases the head's state.
 */
function* headBackward<T extends DeviceMatrix>(
  backend: Backend<T>,
  state: HeadState<T>,
  c: Matrix,
  o: ResolvedOptions,
  upstreamFromOutput: boolean,
  sink: HeadSink<T>,
): Reading<void> {
  const { plan, device, factors } = state;
  const upstream = backend.upload(c);
  let grads: HeadGradients<T> | undefined;
  try {
    if (state.exact) {
      grads = exactBackwardHead(backend, device, state.exact, upstream, o.blockSize);
      // exactBackwardHead released the kept probabilities as it went.
      state.exact = { ...state.exact, probabilities: undefined };
    } else grads = (plan.variant === 'autodiff' ? autodiffBackward : chainedBackward)(backend, device, factors!, state.output, upstream);
    let bound: HeadGradients | undefined;
    if (factors && certifiable(backend, plan.q)) {
      const input = { q: plan.q, k: plan.k, v: plan.v, beta: device.beta, causal: device.causal };
      bound = yield* gradientBound(backend, input, factors, c, { q: device.q, c: upstream }, backwardFactors(plan), upstreamFromOutput);
    }
    yield* sink(plan, grads, bound);
  } finally {
    for (const handle of grads ? [upstream, grads.dq, grads.dk, grads.dv] : [upstream]) backend.dispose(handle);
    releaseHead(backend, state);
  }
}

/** A sink that reads a head's gradients back (checked finite) into the full-width matrices of `assembly`. */
function readInto<T extends DeviceMatrix>(backend: Backend<T>, assembly: Assembly): HeadSink<T> {
  return function* (plan, grads, bound) {
    const host: HeadGradients = {
      dq: yield* readChecked(backend, grads.dq, plan.q, 'dq'),
      dk: yield* readChecked(backend, grads.dk, plan.q, 'dk'),
      dv: yield* readChecked(backend, grads.dv, plan.q, 'dv'),
    };
    assembly.add(plan, host, bound);
  };
}

/** The certified factors of a fast head's backward: autodiff multiplies by p′(S)/D̂ and sums over the centered keys. */
function backwardFactors(plan: HeadPlan): BackwardFactors {
  const { bound, range } = plan.approximation;
  const autodiff = plan.variant === 'autodiff';
  return {
    softmax: bound!.softmaxRelative,
    backward: autodiff ? bound!.autodiffRelative : bound!.softmaxRelative,
    keys: autodiff ? centeredKeys(plan.k, range) : plan.k,
    projected: autodiff && range.centered,
  };
}

/** A float32 computation's rounding (~1e-7 relative) is not in the certified bound, which would then claim more than it can. */
function certifiable(backend: Backend, like: Matrix): boolean {
  return backend.precision !== 'float32' && like.dtype === 'float64';
}

/** Full-width matrices per sequence, and the columns of one head in them. */
class Assembly {
  private readonly grads: Parts;
  // Bound matrices only once a head brings a bound (the chained fast path).
  private bounds: Parts | undefined;
  private bounded = true;

  constructor(private readonly core: CorePlan) {
    this.grads = this.parts();
  }

  private parts(): Parts {
    const none = () => this.core.sequences.map((): Matrix | undefined => undefined);
    return { dq: none(), dk: none(), dv: none() };
  }

  add(plan: HeadPlan, grads: HeadGradients, bound: HeadGradients | undefined): void {
    const { headDim, valueDim } = this.core.layout;
    const n = plan.sequence;
    const place = (into: Parts, part: HeadGradients) => {
      for (const [name, width] of [
        ['dq', headDim],
        ['dk', headDim],
        ['dv', valueDim],
      ] as const) {
        into[name][n] = placeHead(into[name][n], part[name], plan.head, width, this.core.layout.heads);
      }
    };
    place(this.grads, grads);
    if (bound) place((this.bounds ??= this.parts()), bound);
    else if (plan.path === 'fast') this.bounded = false;
  }

  result(): CoreGradients {
    const whole = (parts: Parts) => {
      const like = (pick: (s: AttentionSequence) => Matrix, part: readonly (Matrix | undefined)[]) =>
        this.core.sequences.map((s, n) => part[n] ?? zeros(pick(s).rows, pick(s).cols, { dtype: pick(s).dtype }));
      return { dq: like((s) => s.q, parts.dq), dk: like((s) => s.k, parts.dk), dv: like((s) => s.v, parts.dv) };
    };
    return { ...whole(this.grads), bound: this.bounded && this.bounds ? whole(this.bounds) : undefined };
  }
}

/** Per sequence, the full-width matrix made so far (undefined until a head adds to it). */
interface Parts {
  dq: (Matrix | undefined)[];
  dk: (Matrix | undefined)[];
  dv: (Matrix | undefined)[];
}

/**
 * Puts head `head`'s columns (`part`, a fresh host matrix the caller hands over) into the
 * sequence's full-width matrix: a single head's part is the matrix itself, with no copy.
 */
function placeHead(into: Matrix | undefined, part: Matrix, head: number, width: number, heads: number): Matrix {
  if (heads === 1 && into === undefined) return part;
  const out = into ?? zeros(part.rows, heads * width, { dtype: part.dtype });
  addInto(sliceCols(out, head * width, (head + 1) * width), part);
  return out;
}

/** The forward pass of every head; its states wait for {@link coreBackward}. */
export function* coreForward<T extends DeviceMatrix>(core: CorePlan): Reading<{ outputs: Matrix[]; states: HeadState<T>[] }> {
  const backend = core.options.backend as Backend<T>;
  const outputs = core.sequences.map((s) => zeros(s.q.rows, s.v.cols, { dtype: s.q.dtype }));
  const states: HeadState<T>[] = [];
  try {
    for (const plan of core.plans) {
      const state = yield* headForward(backend, plan, core.layout, core.options);
      states.push(state);
      const width = core.layout.valueDim;
      addInto(sliceCols(outputs[plan.sequence], plan.head * width, (plan.head + 1) * width), state.hostOutput);
    }
  } catch (error) {
    for (const state of states) releaseHead(backend, state);
    throw error;
  }
  return { outputs, states };
}

/** The backward pass of every head for upstream gradients `upstream` (one per sequence, the output's shape). */
export function* coreBackward<T extends DeviceMatrix>(
  core: CorePlan,
  states: HeadState<T>[],
  upstream: Matrix[],
  upstreamFromOutput: boolean,
): Reading<CoreGradients> {
  const backend = core.options.backend as Backend<T>;
  const assembly = new Assembly(core);
  const pending = [...states];
  try {
    while (pending.length > 0) {
      const state = pending.shift()!;
      const { plan } = state;
      const width = core.layout.valueDim;
      const c = sliceCols(upstream[plan.sequence], plan.head * width, (plan.head + 1) * width);
      yield* headBackward(backend, state, c, core.options, upstreamFromOutput, readInto(backend, assembly));
    }
  } finally {
    for (const state of pending) releaseHead(backend, state);
  }
  return assembly.result();
}

/**
 * Output and ∂Q, ∂K, ∂V of the paper's loss ½‖O − Y‖² in one go: exact heads run the fused
 * single pass ({@link exactLossHead}); fast heads run forward, then backward with c = Ô − Y. Each
 * head's gradients go to `sink` on the backend, so a caller that only multiplies them never reads
 * them back; `bounded` says whether every fast head brought a certified bound (and one did).
 */
export function* coreLoss<T extends DeviceMatrix>(core: CorePlan, targets: Matrix[], sink: HeadSink<T>): Reading<{ outputs: Matrix[]; bounded: boolean }> {
  const backend = core.options.backend as Backend<T>;
  const { layout, options } = core;
  const outputs = core.sequences.map((): Matrix | undefined => undefined);
  let [someBound, everyBound] = [false, true];
  const counted: HeadSink<T> = function* (plan, grads, bound) {
    if (bound) someBound = true;
    else if (plan.path === 'fast') everyBound = false;
    yield* sink(plan, grads, bound);
  };
  for (const plan of core.plans) {
    const columns = (m: Matrix) => sliceCols(m, plan.head * layout.valueDim, (plan.head + 1) * layout.valueDim);
    const y = columns(targets[plan.sequence]);
    let output: Matrix;
    if (plan.path === 'exact') {
      const device = upload(backend, plan, layout);
      const target = backend.upload(y);
      const made: T[] = [device.q, device.k, device.v, target];
      try {
        const result = exactLossHead(backend, device, target, options.blockSize);
        made.push(result.output, result.dq, result.dk, result.dv);
        output = yield* readChecked(backend, result.output, plan.q, 'output');
        yield* counted(plan, { dq: result.dq, dk: result.dk, dv: result.dv }, undefined);
      } finally {
        for (const handle of made) backend.dispose(handle);
      }
    } else {
      const state = yield* headForward(backend, plan, layout, options);
      output = state.hostOutput;
      yield* headBackward(backend, state, sub(output, y), options, true, counted);
    }
    outputs[plan.sequence] = placeHead(outputs[plan.sequence], output, plan.head, layout.valueDim, layout.heads);
  }
  return {
    outputs: outputs.map((o, n) => o ?? zeros(core.sequences[n].q.rows, core.sequences[n].v.cols, { dtype: core.sequences[n].q.dtype })),
    bounded: someBound && everyBound,
  };
}
