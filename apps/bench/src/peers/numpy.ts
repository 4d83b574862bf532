import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { LoraProblem, Target } from '@almora/lora';
import { fromArray, type Matrix } from '@almora/tensor';
import { PYTHON, peerScript } from './python.js';


/** The methods the numpy peer runs: almora's exact path and both fast variants at Taylor degree 2 (no key centering). */
export type NumpyMethod = 'exact' | 'fast chained g2' | 'fast autodiff g2';

/** One single-head problem as plain arrays (rows of numbers), for the peer to run on exactly these values. */
export interface NumpyInputs {
  /** X (L×d). */
  x: number[][];
  /** Target Y (L×d). */
  y: number[][];
  /** Frozen W*_q, W*_k, W*_v (d×d). */
  weights: Record<Target, number[][]>;
  /** The adapters in the paper's orientation: A (r×d), B (d×r). */
  adapters: Partial<Record<Target, { a: number[][]; b: number[][] }>>;
  /** LoRA α. */
  alpha: number;
  /** Softmax temperature β. */
  beta: number;
}

/** What the numpy peer is asked to time. */
export interface NumpySpec {
  /** Sequence lengths, in order. */
  lengths: number[];
  /** Model (and head) dimension. */
  d: number;
  /** LoRA rank r. */
  rank: number;
  /** 'partial' adapts q, v; 'full' adapts q, k, v. */
  adaptation: 'partial' | 'full';
  /** Methods to time at every length. */
  methods: NumpyMethod[];
  /** Timed runs per length and method (a first run over 5 s is the only one). */
  repeats: number;
  /** A method is skipped from the length where its predicted seconds per run exceed this. */
  budget: number;
  /** Seed of the generated inputs. */
  seed: number;
  /** Γ of the generated inputs (X is scaled to it, as almora's syntheticProblem does); default 0.5. */
  gamma?: number;
  /** OpenBLAS threads; default OpenBLAS's own choice. */
  threads?: number;
  /** Query rows per exact block; default 128, almora's. */
  blockSize?: number;
  /** Inputs to use at some lengths (keyed by L) instead of generated ones, so gradients can be compared. */
  inputs?: Record<string, NumpyInputs>;
}

/** One method at one length: its times and the adapter gradients (paper orientation), or why it did not run. */
export interface NumpyResult {
  /** Median of the times, in seconds. */
  median?: number;
  /** Raw times, in seconds. */
  times?: number[];
  /** ∂A, ∂B of every adapter. */
  grads?: Partial<Record<Target, { a: Matrix; b: Matrix }>>;
  /** Why it was skipped. */
  error?: string;
}

/** The BLAS numpy loaded, as the peer read it from its own process's memory map. */
export interface NumpyBlas {
  /** 'OpenBLAS', or 'not OpenBLAS' when the loaded library does not answer openblas_get_config. */
  name: string;
  /** Path of the loaded library. */
  library: string;
  /** openblas_get_config(): version, kernel and build flags. */
  config: string;
  /** openblas_get_num_threads() while timing (null when not OpenBLAS). */
  threads: number | null;
}

/** What the numpy peer measured, or why it could not run. */
export type NumpyOutcome =
  | { available: true; version: string; blas: NumpyBlas; results: Record<string, Partial<Record<NumpyMethod, NumpyResult>>> }
  | { available: false; note: string };

type RawGrads = Partial<Record<Target, { a: number[][]; b: number[][] }>>;
type RawResult = { median?: number; times?: number[]; grads?: RawGrads; error?: string };

/** A single-sequence, single-head {@link LoraProblem} as {@link NumpyInputs}. */
export function numpyInputs(problem: LoraProblem): NumpyInputs {
  const adapters: NumpyInputs['adapters'] = {};
  for (const [t, adapter] of Object.entries(problem.adapters) as [Target, { a: Matrix; b: Matrix }][]) adapters[t] = { a: adapter.a.toArray(), b: adapter.b.toArray() };
  const { q, k, v } = problem.weights;
  return {
    x: (problem.x as Matrix).toArray(),
    y: (problem.target as Matrix).toArray(),
    weights: { q: q.toArray(), k: k.toArray(), v: v.toArray() },
    adapters,
    alpha: problem.alpha,
    beta: problem.beta ?? 1 / Math.sqrt(q.cols),
  };
}

function gradsOf(raw: RawGrads): Partial<Record<Target, { a: Matrix; b: Matrix }>> {
  const out: Partial<Record<Target, { a: Matrix; b: Matrix }>> = {};
  for (const [t, g] of Object.entries(raw) as [Target, { a: number[][]; b: number[][] }][]) out[t] = { a: fromArray(g.a), b: fromArray(g.b) };
  return out;
}

/**
 * Runs almora's algorithms (blocked exact; fast chained and autodiff at Taylor degree 2) in numpy
 * through Debian's python3-numpy, in its own process, and reports the BLAS it loaded.
 */
export function runNumpyPeer(spec: NumpySpec): NumpyOutcome {
  const file = peerScript('numpy_lora_attention.py');
  if (!existsSync(PYTHON) || !file) return { available: false, note: 'numpy peer skipped: /usr/bin/python3 or the peer script is missing' };
  const probe = spawnSync(PYTHON, ['-c', 'import numpy'], { encoding: 'utf8' });
  if (probe.status !== 0) return { available: false, note: 'numpy peer skipped: python3-numpy is not installed (apt-get install python3-numpy libopenblas0-pthread)' };
  const run = spawnSync(PYTHON, [file], { input: JSON.stringify(spec), encoding: 'utf8', maxBuffer: 1 << 26 });
  if (run.status !== 0) return { available: false, note: `numpy peer failed: ${run.stderr.trim().split('\n').pop()}` };
  const parsed = JSON.parse(run.stdout) as { numpy: string; blas: NumpyBlas; results: Record<string, Partial<Record<NumpyMethod, RawResult>>> };
  const results: Record<string, Partial<Record<NumpyMethod, NumpyResult>>> = {};
  for (const [length, byMethod] of Object.entries(parsed.results)) {
    results[length] = {};
    for (const [method, r] of Object.entries(byMethod) as [NumpyMethod, RawResult][]) results[length][method] = { median: r.median, times: r.times, error: r.error, grads: r.grads && gradsOf(r.grads) };
  }
  return { available: true, version: parsed.numpy, blas: parsed.blas, results };
}
