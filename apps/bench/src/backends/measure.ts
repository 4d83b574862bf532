// The backends suite's measurements, free of Node APIs: the same code runs in Node and in a page
// in headless Chromium, so every backend is timed and checked by one function.
import { cpuBackend, featureTree, fused, taylorExp } from '@almora/kernels';
import { faceSplitApply, loraGradientsAsync, type LoraProblem } from '@almora/lora';
import { type Backend, type DeviceMatrix, type DType, type Matrix, randomNormal, Rng, scale, toDType } from '@almora/tensor';
import { benchProblem } from '../problems.js';

/** Sizes of the measured work. */
export interface BackendSizes {
  /** n of the n×n matmul. */
  matmul: number;
  /** L of the kernels (attention rows use a 128-query block against L keys). */
  length: number;
  /** L of the full gradients. */
  gradientLength: number;
  /** Head dimension d. */
  d: number;
}

/** One piece of work on one backend: median time and deviation from the CPU in float64. */
export interface BackendMeasurement {
  backend: string;
  work: string;
  /** Every timing, seconds, of compute plus read-back (inputs already on the device). */
  seconds: number[];
  /** max|x − x₆₄| / max|x₆₄| against the CPU backend in float64. */
  deviation: number;
}

interface Work {
  name: string;
  /** Runs the work on `backend` with inputs in `dtype` and reads the result back as float64. */
  prepare<T extends DeviceMatrix>(backend: Backend<T>, dtype: DType): () => Promise<Matrix>;
}

const QUERY_BLOCK = 128;

function problemIn(problem: LoraProblem, dtype: DType): LoraProblem {
  if (dtype === 'float64') return problem;
  const to = (m: Matrix) => toDType(m, dtype);
  const adapters = Object.fromEntries(Object.entries(problem.adapters).map(([t, ad]) => [t, { a: to(ad!.a), b: to(ad!.b) }]));
  return {
    ...problem,
    x: to(problem.x as Matrix),
    target: to(problem.target as Matrix),
    weights: { q: to(problem.weights.q), k: to(problem.weights.k), v: to(problem.weights.v) },
    adapters,
  };
}

function works(sizes: BackendSizes, seed: number): Work[] {
  const rng = new Rng(seed);
  const { d, length } = sizes;
  const a = randomNormal(sizes.matmul, sizes.matmul, rng);
  const b = randomNormal(sizes.matmul, sizes.matmul, rng);
  const queries = scale(randomNormal(QUERY_BLOCK, d, rng), 0.5);
  const keys = scale(randomNormal(length, d, rng), 0.5);
  const x = scale(randomNormal(length, d, rng), 0.5);
  const tree = featureTree(d, taylorExp(2), 1 / Math.sqrt(d), 'query');
  const k = tree.parents.length;
  const u = scale(randomNormal(length, k, rng), 0.1);
  const c = randomNormal(length, d, rng);
  const w = scale(randomNormal(length, k, rng), 0.1);
  const values = randomNormal(length, d, rng);
  const problem = benchProblem({ length: sizes.gradientLength, d, rank: 4, adaptation: 'partial', gamma: 0.5 }, rng);
  // Reads are awaited on every backend (WebGPU has no other way); on the others it resolves at once.
  const read = async <T extends DeviceMatrix>(backend: Backend<T>, handle: T) => {
    const host = await backend.read(handle);
    backend.dispose(handle);
    return toDType(host, 'float64');
  };
  const gradient = (method: 'exact' | 'fast') => (backend: Backend, dtype: DType) => {
    const input = problemIn(problem, dtype);
    return async () => toDType((await loraGradientsAsync(input, { method, degree: 2, backend })).grads.q!.a, 'float64');
  };
  return [
    {
      name: `matmul ${sizes.matmul}×${sizes.matmul}`,
      prepare: (backend, dtype) => {
        const [ha, hb] = [a, b].map((m) => backend.upload(toDType(m, dtype)));
        return () => read(backend, backend.matmul(ha, hb));
      },
    },
    {
      name: `attention probabilities ${QUERY_BLOCK}×${length}`,
      prepare: (backend, dtype) => {
        const [hq, hk] = [queries, keys].map((m) => backend.upload(toDType(m, dtype)));
        return () => read(backend, fused(backend).attentionProbabilities(hq, hk, 1 / Math.sqrt(d)));
      },
    },
    {
      name: `polynomial features ${length}×${d} → ${length}×${k}`,
      prepare: (backend, dtype) => {
        const hx = backend.upload(toDType(x, dtype));
        return () => read(backend, fused(backend).productFeatures(hx, tree));
      },
    },
    {
      name: `p₁·V, rank ${k}·${d}, L=${length}`,
      prepare: (backend, dtype) => {
        const [hu, hc, hw, hv] = [u, c, w, values].map((m) => backend.upload(toDType(m, dtype)));
        return () => read(backend, faceSplitApply(backend, [hu, hc], [hw, hv], hv, false, false));
      },
    },
    { name: `loraGradients fast g2 L=${sizes.gradientLength}`, prepare: gradient('fast') },
    { name: `loraGradients exact L=${sizes.gradientLength}`, prepare: gradient('exact') },
  ];
}

function relativeDeviation(x: Matrix, reference: Matrix): number {
  let num = 0;
  let den = 0;
  for (let t = 0; t < reference.data.length; t++) {
    const diff = Math.abs(x.data[t] - reference.data[t]);
    num = diff > num || Number.isNaN(diff) ? diff : num;
    den = Math.max(den, Math.abs(reference.data[t]));
  }
  return den === 0 ? num : num / den;
}

/** A backend to measure, with the dtype its inputs are given in. */
export interface BackendCase {
  label: string;
  backend: Backend;
  dtype: DType;
}

/**
 * Times every piece of work on every case (one warm-up run each, which also compiles GPU
 * kernels, then `repeats` timed runs, interleaved across cases) and measures each result's
 * deviation from the CPU backend in float64.
 */
export async function measureBackends(
  cases: readonly BackendCase[],
  sizes: BackendSizes,
  repeats: number,
  seed: number,
  onWork: (label: string) => void = () => {},
): Promise<BackendMeasurement[]> {
  const out: BackendMeasurement[] = [];
  for (const work of works(sizes, seed)) {
    const reference = await work.prepare(cpuBackend, 'float64')();
    const runs = cases.map((c) => ({ c, run: work.prepare(c.backend, c.dtype) }));
    const results: { label: string; seconds: number[]; deviation: number }[] = [];
    for (const { c, run } of runs) results.push({ label: c.label, seconds: [], deviation: relativeDeviation(await run(), reference) });
    for (let r = 0; r < repeats; r++) {
      for (const [i, { run }] of runs.entries()) {
        const t0 = performance.now();
        await run();
        results[i].seconds.push((performance.now() - t0) / 1000);
      }
    }
    for (const r of results) out.push({ backend: r.label, work: work.name, seconds: r.seconds, deviation: r.deviation });
    onWork(work.name);
  }
  return out;
}
