import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
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

/** One run of a method on the loaded problem: its seconds (timed inside the peer) and the adapter gradients (paper orientation). */
export interface NumpyRun {
  seconds: number;
  grads: Partial<Record<Target, { a: Matrix; b: Matrix }>>;
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

type RawGrads = Partial<Record<Target, { a: number[][]; b: number[][] }>>;
type Reply = { error?: string; numpy?: string; blas?: NumpyBlas; loaded?: number; seconds?: number; grads?: RawGrads };

/** A single-sequence, single-head {@link LoraProblem} as {@link NumpyInputs}. */
export function numpyInputs(problem: LoraProblem): NumpyInputs {
  const adapters: NumpyInputs['adapters'] = {};
  for (const [t, adapter] of Object.entries(problem.adapters) as [Target, { a: Matrix; b: Matrix }][])
    adapters[t] = { a: adapter.a.toArray(), b: adapter.b.toArray() };
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
 * A session with the numpy peer (apps/bench/peers/numpy_lora_attention.py): almora's algorithms
 * (blocked exact; fast chained and autodiff at Taylor degree 2) in numpy through Debian's
 * python3-numpy, in its own process, one run per request — so a suite can interleave its runs
 * with almora's repeat by repeat, and a change in the machine's load falls on both alike.
 */
export class NumpyPeer {
  private readonly pending: ((reply: Reply) => void)[] = [];
  private exited: string | undefined;
  /** numpy's version. */
  version = '';
  /** The BLAS numpy loaded, with the thread count it times with. */
  blas: NumpyBlas = { name: '', library: '', config: '', threads: null };

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    const stderr: string[] = [];
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
    createInterface({ input: child.stdout }).on('line', (line) => this.pending.shift()?.(JSON.parse(line) as Reply));
    const end = (why: string) => {
      this.exited ??= `numpy peer ${why}: ${stderr.join('').trim().split('\n').pop() ?? ''}`;
      for (const answer of this.pending.splice(0)) answer({ error: this.exited });
    };
    child.on('exit', (code) => end(`exited (code ${code})`));
    child.on('error', (error) => end(`failed (${error.message})`));
    // A write after the peer died fails here; the exit above answers what was pending.
    child.stdin.on('error', () => undefined);
  }

  /**
   * Starts the peer with `threads` OpenBLAS threads (default OpenBLAS's own choice) and `blockSize`
   * query rows per exact block (default 128, almora's); a note instead when it cannot run here.
   */
  static async open(options: { threads?: number; blockSize?: number } = {}): Promise<NumpyPeer | { note: string }> {
    const file = peerScript('numpy_lora_attention.py');
    if (!existsSync(PYTHON) || !file) return { note: 'numpy peer skipped: /usr/bin/python3 or the peer script is missing' };
    const probe = spawnSync(PYTHON, ['-c', 'import numpy'], { encoding: 'utf8' });
    if (probe.status !== 0) return { note: 'numpy peer skipped: python3-numpy is not installed (apt-get install python3-numpy libopenblas0-pthread)' };
    const peer = new NumpyPeer(spawn(PYTHON, [file], { stdio: ['pipe', 'pipe', 'pipe'] }));
    try {
      const setup = await peer.request({ threads: options.threads ?? null, blockSize: options.blockSize ?? 128 });
      peer.version = setup.numpy!;
      peer.blas = setup.blas!;
      return peer;
    } catch (error) {
      peer.child.kill();
      return { note: `numpy peer failed to start: ${error instanceof Error ? error.message : String(error)}` };
    }
  }

  /** Makes `inputs` the problem the next runs time. */
  async load(inputs: NumpyInputs): Promise<void> {
    await this.request({ load: inputs });
  }

  /** Runs `method` once on the loaded problem. */
  async run(method: NumpyMethod): Promise<NumpyRun> {
    const reply = await this.request({ run: method });
    return { seconds: reply.seconds!, grads: gradsOf(reply.grads ?? {}) };
  }

  /** Ends the session. */
  close(): void {
    this.child.stdin.end();
  }

  private request(message: object): Promise<Reply> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    return new Promise((resolve, reject) => {
      this.pending.push((reply) => (reply.error ? reject(new Error(`numpy peer: ${reply.error}`)) : resolve(reply)));
      this.child.stdin.write(`${JSON.stringify(message)}\n`);
    });
  }
}
