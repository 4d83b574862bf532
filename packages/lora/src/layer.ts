import { addInto, assertFinite, type DeviceMatrix, InvalidArgumentError, matmul, type Matrix, ShapeError, zeros } from '@almora/tensor';
import { adapterGradients, effectiveWeight, linearWeightGradient, type LoraWeights } from './adapters.js';
import { denseProducts } from './products.js';
import { asList, once, upstreamOf } from './attention.js';
import { type CorePlan, planAttention } from './plan.js';
import type { AttentionReport } from './report.js';
import { coreBackward, coreForward, type HeadState, releaseHeads } from './run.js';
import { type Reading, runLater, runNow } from './head.js';
import { type AttentionOptions, loraScaling } from './options.js';

/** The four linear maps of an attention layer, by their Hugging Face module names. */
export type ModuleName = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj';

/** Every module, in q, k, v, o order. */
export const MODULES: readonly ModuleName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];

/** LoRA on a layer, as PEFT configures it: one r and alpha, adapters on some modules. */
export interface LoraConfig {
  /** The rank r (rows of every lora_A). */
  r: number;
  /** lora_alpha; the update is scaled by alpha/r. */
  alpha: number;
  /** The adapted modules (PEFT's target_modules) and their tensors. */
  adapters: Partial<Record<ModuleName, LoraWeights>>;
}

/**
 * A multi-head attention layer with torch.nn.Linear weights (out×in, y = x·Wᵀ + b) under Hugging
 * Face's module names, and optional LoRA adapters in PEFT's names, shapes and scaling.
 */
export interface AttentionLayer {
  /** Number of heads H: q_proj, k_proj and v_proj outputs split into H column groups. */
  heads: number;
  /** Causal (decoder) masking; default false. */
  causal?: boolean;
  /** Softmax temperature β; default 1/√head_dim. */
  beta?: number;
  /** Frozen weights, each out×in: q_proj, k_proj (H·d_h × d_model), v_proj (H·d_v × d_model), o_proj (d_out × H·d_v). */
  weights: Record<ModuleName, Matrix>;
  /** Frozen biases, each 1×out (torch's bias vector as a row). */
  bias?: Partial<Record<ModuleName, Matrix>>;
  /** LoRA adapters; without them the layer is frozen and only dx (and weight gradients) are returned. */
  lora?: LoraConfig;
}

/** Options of {@link loraAttention}: the attention core's, plus what to return. */
export interface LayerOptions extends AttentionOptions {
  /** Also return ∂loss/∂W (out×in) of all four modules' effective weights; default false. */
  weightGradients?: boolean;
}

/** What {@link LoraAttentionResult.backward} returns. */
export interface LayerGradients<M> {
  /** ∂loss/∂x, the shape of x. */
  dx: M;
  /** ∂loss/∂lora_A and ∂loss/∂lora_B of every adapted module, in PEFT's shapes. */
  grads: Partial<Record<ModuleName, LoraWeights>>;
  /** ∂loss/∂W of every module's effective weight (out×in), when `weightGradients` was asked for. */
  weightGrads: Record<ModuleName, Matrix> | undefined;
  /**
   * Entrywise upper bounds on the error of the q_proj, k_proj and v_proj adapter gradients, carried
   * over from the attention core's bound (see {@link attention}: the error of the
   * backward pass for the given upstream gradient, when the computation ran in float64); undefined
   * otherwise. o_proj has none: its gradient is exact for the output
   * the layer returned, which itself carries the certified attention error.
   */
  bound: Partial<Record<ModuleName, LoraWeights>> | undefined;
}

/** The layer's forward result: output, report, and the vector-Jacobian product. */
export interface LoraAttentionResult<M> {
  /** o_proj(attention(q_proj(x), k_proj(x), v_proj(x))), L×d_out per sequence. */
  output: M;
  /** What the attention core decided for every head, and why. */
  report: AttentionReport;
  /** ∂loss/∂x and every adapter gradient for the upstream gradient ∂loss/∂output. Call it once. */
  backward(outputGradient: M): LayerGradients<M>;
  /** Releases what the forward pass kept without computing gradients (inference). */
  dispose(): void;
}

/** {@link LoraAttentionResult} for devices whose reads are asynchronous (WebGPU). */
export interface AsyncLoraAttentionResult<M> {
  /** As {@link LoraAttentionResult.output}. */
  output: M;
  /** As {@link LoraAttentionResult.report}. */
  report: AttentionReport;
  /** As {@link LoraAttentionResult.backward}, awaited. */
  backward(outputGradient: M): Promise<LayerGradients<M>>;
  /** As {@link LoraAttentionResult.dispose}. */
  dispose(): void;
}

interface CheckedLayer {
  effective: Record<ModuleName, Matrix>;
  adapters: Partial<Record<ModuleName, LoraWeights>>;
  scaling: number;
  bias: Partial<Record<ModuleName, Matrix>>;
}

function isMatrix(m: unknown): m is Matrix {
  return typeof m === 'object' && m !== null && typeof (m as Matrix).rows === 'number' && (m as Matrix).data !== undefined;
}

function knownModules(record: object, what: string): void {
  for (const key of Object.keys(record)) {
    if (!(MODULES as readonly string[]).includes(key))
      throw new InvalidArgumentError(`${what} names unknown module "${key}"; modules are ${MODULES.join(', ')}`);
  }
}

/** Checks every shape, dtype and value of the layer against x's width, and forms W + (alpha/r)·B·A. */
function checkLayer(layer: AttentionLayer, inputDim: number, dtype: Matrix['dtype']): CheckedLayer {
  if (typeof layer !== 'object' || layer === null || typeof layer.weights !== 'object' || layer.weights === null)
    throw new InvalidArgumentError('layer.weights is missing');
  if (!Number.isInteger(layer.heads) || layer.heads < 1) throw new InvalidArgumentError(`layer.heads must be a positive integer, got ${String(layer.heads)}`);
  knownModules(layer.weights, 'layer.weights');
  for (const name of MODULES) {
    const w = layer.weights[name];
    if (!isMatrix(w)) throw new InvalidArgumentError(`layer.weights.${name} is missing or not a matrix`);
    if (w.dtype !== dtype) throw new InvalidArgumentError(`layer.weights.${name} is ${w.dtype} but x is ${dtype}`);
    assertFinite(w, `layer.weights.${name}`);
  }
  const { q_proj: wq, k_proj: wk, v_proj: wv, o_proj: wo } = layer.weights;
  for (const [name, w] of [
    ['q_proj', wq],
    ['k_proj', wk],
    ['v_proj', wv],
  ] as const) {
    if (w.cols !== inputDim)
      throw new ShapeError(`layer.weights.${name} is ${w.rows}×${w.cols} (out×in) but x has ${inputDim} columns: its in must be ${inputDim}`);
  }
  if (wk.rows !== wq.rows) throw new ShapeError(`k_proj is ${wk.rows}×${wk.cols} but q_proj is ${wq.rows}×${wq.cols}: queries and keys need one width`);
  if (wo.cols !== wv.rows) throw new ShapeError(`o_proj is ${wo.rows}×${wo.cols} (out×in) but v_proj gives ${wv.rows} columns: o_proj's in must be ${wv.rows}`);
  const bias = layer.bias ?? {};
  knownModules(bias, 'layer.bias');
  for (const name of MODULES) {
    const b = bias[name];
    if (b === undefined) continue;
    if (!isMatrix(b) || b.rows !== 1 || b.cols !== layer.weights[name].rows) throw new ShapeError(`layer.bias.${name} must be 1×${layer.weights[name].rows}`);
    if (b.dtype !== dtype) throw new InvalidArgumentError(`layer.bias.${name} is ${b.dtype} but x is ${dtype}`);
    assertFinite(b, `layer.bias.${name}`);
  }
  const adapters = layer.lora?.adapters ?? {};
  let scaling = 0;
  if (layer.lora) {
    const { r } = layer.lora;
    if (!Number.isInteger(r) || r < 1) throw new InvalidArgumentError(`lora.r must be a positive integer, got ${r}`);
    scaling = loraScaling(layer.lora.alpha, r);
    if (typeof adapters !== 'object' || adapters === null) throw new InvalidArgumentError('lora.adapters must be an object of modules');
    knownModules(adapters, 'lora.adapters');
    for (const name of MODULES) {
      const adapter = adapters[name];
      if (adapter === undefined) continue;
      const w = layer.weights[name];
      const { lora_A: a, lora_B: b } = adapter;
      if (!isMatrix(a) || !isMatrix(b)) throw new InvalidArgumentError(`lora.adapters.${name} needs lora_A and lora_B matrices`);
      if (a.rows !== r || a.cols !== w.cols) throw new ShapeError(`${name}.lora_A is ${a.rows}×${a.cols} but must be r×in = ${r}×${w.cols}`);
      if (b.rows !== w.rows || b.cols !== r) throw new ShapeError(`${name}.lora_B is ${b.rows}×${b.cols} but must be out×r = ${w.rows}×${r}`);
      if (a.dtype !== dtype || b.dtype !== dtype) throw new InvalidArgumentError(`lora.adapters.${name} is not ${dtype} like x`);
      assertFinite(a, `${name}.lora_A`);
      assertFinite(b, `${name}.lora_B`);
    }
  }
  const effective = {} as Record<ModuleName, Matrix>;
  for (const name of MODULES) effective[name] = effectiveWeight(layer.weights[name], adapters[name], scaling);
  return { effective, adapters, scaling, bias };
}

/** x·Wᵀ + b. */
function linear(x: Matrix, weight: Matrix, bias: Matrix | undefined): Matrix {
  const y = matmul(x, weight, { transposeB: true });
  if (bias) for (let i = 0; i < y.rows; i++) for (let j = 0; j < y.cols; j++) y.data[i * y.cols + j] += bias.data[bias.offset + j];
  return y;
}

interface LayerForward {
  xs: Matrix[];
  single: boolean;
  layer: CheckedLayer;
  core: CorePlan;
  attended: Matrix[];
  outputs: Matrix[];
}

function planLayer(
  layer: AttentionLayer,
  x: Matrix | readonly Matrix[],
  options: LayerOptions,
): { xs: Matrix[]; single: boolean; checked: CheckedLayer; core: CorePlan } {
  const { list: xs, single } = asList(x, 'x');
  if (xs.length === 0) throw new ShapeError('the batch is empty');
  xs.forEach((m, n) => {
    if (!isMatrix(m)) throw new InvalidArgumentError(`x${single ? '' : ` of sequence ${n}`} is not a matrix`);
    if (m.cols !== xs[0].cols || m.dtype !== xs[0].dtype)
      throw new ShapeError(`sequence ${n} of x is ${m.rows}×${m.cols} ${m.dtype}, unlike sequence 0 (${xs[0].cols} columns, ${xs[0].dtype})`);
    assertFinite(m, `x${single ? '' : ` of sequence ${n}`}`);
  });
  const checked = checkLayer(layer, xs[0].cols, xs[0].dtype);
  const { effective, bias } = checked;
  const sequences = xs.map((xn) => ({
    q: linear(xn, effective.q_proj, bias.q_proj),
    k: linear(xn, effective.k_proj, bias.k_proj),
    v: linear(xn, effective.v_proj, bias.v_proj),
  }));
  const core = planAttention(sequences, { ...options, heads: layer.heads, causal: layer.causal, beta: layer.beta });
  return { xs, single, checked, core };
}

function* layerBackward(
  forward: LayerForward,
  states: HeadState<DeviceMatrix>[],
  outputGradient: Matrix[],
  options: LayerOptions,
): Reading<LayerGradients<Matrix[]>> {
  const { xs, layer, core, attended } = forward;
  const { effective, adapters, scaling } = layer;
  const upstream = outputGradient.map((g) => matmul(g, effective.o_proj));
  const g = yield* coreBackward(core, states, upstream, false);
  const dx = xs.map((x, n) => {
    const total = zeros(x.rows, x.cols, { dtype: x.dtype });
    addInto(total, matmul(g.dq[n], effective.q_proj));
    addInto(total, matmul(g.dk[n], effective.k_proj));
    addInto(total, matmul(g.dv[n], effective.v_proj));
    return total;
  });
  const perModule: Record<ModuleName, [Matrix[], Matrix[]]> = {
    q_proj: [xs, g.dq],
    k_proj: [xs, g.dk],
    v_proj: [xs, g.dv],
    o_proj: [attended, outputGradient],
  };
  const weightGrads = {} as Record<ModuleName, Matrix>;
  const grads: LayerGradients<Matrix[]>['grads'] = {};
  const bound: NonNullable<LayerGradients<Matrix[]>['bound']> = {};
  // o_proj has no bound: its gradient is exact for the output the layer returned.
  const coreBounds: Partial<Record<ModuleName, Matrix[]>> = g.bound ? { q_proj: g.bound.dq, k_proj: g.bound.dk, v_proj: g.bound.dv } : {};
  const products = denseProducts(core.options.backend);
  try {
    for (const name of MODULES) {
      const adapter = adapters[name];
      if (!adapter && !options.weightGradients) continue;
      const [inputs, gradients] = perModule[name];
      weightGrads[name] = yield* linearWeightGradient(products, inputs, gradients);
      if (!adapter) continue;
      grads[name] = adapterGradients(weightGrads[name], adapter, scaling);
      const coreBound = coreBounds[name];
      if (coreBound) bound[name] = adapterGradients(yield* linearWeightGradient(products, xs, coreBound, true), adapter, scaling, true);
    }
  } finally {
    products.release();
  }
  return { dx, grads, weightGrads: options.weightGradients ? weightGrads : undefined, bound: g.bound ? bound : undefined };
}

function shapedLayerGradients<M>(g: LayerGradients<Matrix[]>, single: boolean): LayerGradients<M> {
  return { ...g, dx: (single ? g.dx[0] : g.dx) as M };
}

/**
 * A LoRA-adapted multi-head attention layer as a differentiable function, in the vjp style:
 * output = o_proj(concat_h softmax(β·Q_h·K_hᵀ [+ causal mask])·V_h) with Q = x·W_qᵀ + b_q (and K, V
 * likewise), every W the effective W + (alpha/r)·lora_B·lora_A; `backward(dOutput)` gives dx and the
 * gradient of every lora_A and lora_B. The attention in between is {@link attention}'s core, so
 * each head takes the exact, fast or 'auto' path with its report. x is L×d_model (float64 or
 * float32) or an array of such (a batch).
 *
 * Orientation is checked by shape only: where a module is square (d_model = H·d_h, the usual
 * case) a weight given in×out (GPT-2's Conv1D, or the paper's W) is accepted and silently wrong.
 * Pass torch.nn.Linear weights and PEFT's lora_A/lora_B as PEFT stores them.
 *
 * @example
 * ```ts
 * import { loraAttention } from '@almora/lora';
 * import { Rng, randomNormal, scale, zeros } from '@almora/tensor';
 *
 * const rng = new Rng(2);
 * const [L, d, r] = [1024, 16, 4];
 * const linear = () => scale(randomNormal(d, d, rng), 1 / Math.sqrt(d)); // torch.nn.Linear: out×in
 * const adapter = { lora_A: scale(randomNormal(r, d, rng), 0.1), lora_B: zeros(d, r) }; // PEFT's init
 * const layer = { heads: 2, causal: true, weights: { q_proj: linear(), k_proj: linear(), v_proj: linear(), o_proj: linear() }, lora: { r, alpha: 8, adapters: { q_proj: adapter } } };
 * const { output, report, backward } = loraAttention(layer, scale(randomNormal(L, d, rng), 0.5), { method: 'auto', epsilon: 1e-3 });
 * const { dx, grads } = backward(randomNormal(L, d, rng)); // ∂loss/∂output from the layers above
 * console.log(output.shape, dx.shape, grads.q_proj.lora_A.shape, grads.q_proj.lora_B.shape, report.heads.length); // [ 1024, 16 ] [ 1024, 16 ] [ 4, 16 ] [ 16, 4 ] 2
 * ```
 */
export function loraAttention<M extends Matrix | readonly Matrix[]>(
  layer: AttentionLayer,
  x: M,
  options: LayerOptions = {},
): LoraAttentionResult<M extends readonly Matrix[] ? Matrix[] : Matrix> {
  type Out = M extends readonly Matrix[] ? Matrix[] : Matrix;
  const planned = planLayer(layer, x, options);
  const { outputs: attended, states } = runNow(coreForward(planned.core));
  const forward = finish(planned, attended);
  const guard = once(() => releaseHeads(planned.core, states));
  return {
    output: (forward.single ? forward.outputs[0] : forward.outputs) as Out,
    report: planned.core.report,
    backward(outputGradient) {
      const upstream = upstreamOf(outputGradient, forward.outputs);
      guard.take();
      return shapedLayerGradients<Out>(runNow(layerBackward(forward, states, upstream, options)), forward.single);
    },
    dispose: guard.dispose,
  };
}

/** {@link loraAttention} for any backend, asynchronous devices (WebGPU) included: every read-back awaited. */
export async function loraAttentionAsync<M extends Matrix | readonly Matrix[]>(
  layer: AttentionLayer,
  x: M,
  options: LayerOptions = {},
): Promise<AsyncLoraAttentionResult<M extends readonly Matrix[] ? Matrix[] : Matrix>> {
  type Out = M extends readonly Matrix[] ? Matrix[] : Matrix;
  const planned = planLayer(layer, x, options);
  const { outputs: attended, states } = await runLater(coreForward(planned.core));
  const forward = finish(planned, attended);
  const guard = once(() => releaseHeads(planned.core, states));
  return {
    output: (forward.single ? forward.outputs[0] : forward.outputs) as Out,
    report: planned.core.report,
    async backward(outputGradient) {
      const upstream = upstreamOf(outputGradient, forward.outputs);
      guard.take();
      return shapedLayerGradients<Out>(await runLater(layerBackward(forward, states, upstream, options)), forward.single);
    },
    dispose: guard.dispose,
  };
}

function finish(planned: ReturnType<typeof planLayer>, attended: Matrix[]): LayerForward {
  const { effective, bias } = planned.checked;
  const outputs = attended.map((a) => linear(a, effective.o_proj, bias.o_proj));
  return { xs: planned.xs, single: planned.single, layer: planned.checked, core: planned.core, attended, outputs };
}
