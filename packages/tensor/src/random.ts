import { InvalidArgumentError } from './errors.js';
import { zeros } from './create.js';
import type { CreateOptions, Matrix } from './matrix.js';

/**
 * A small, fast, deterministic pseudo-random generator: mulberry32 (Tommy Ettinger, public domain).
 * Its whole state is one 32-bit integer, so the same seed gives the same stream on every machine and
 * JavaScript engine, and a run can save {@link Rng.state} and resume it exactly.
 *
 * Not for cryptography. Period 2³².
 */
export class Rng {
  private s: number;

  /** Seeds the generator; any finite number is reduced to 32 bits. */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new InvalidArgumentError(`Rng seed must be finite, got ${seed}`);
    this.s = seed >>> 0;
  }

  /** The generator's complete state; `new Rng(0).setState(s)` continues the stream exactly. */
  get state(): number {
    return this.s >>> 0;
  }

  /** Restores a state taken from {@link Rng.state}. */
  setState(state: number): this {
    if (!Number.isInteger(state) || state < 0 || state > 0xffffffff) {
      throw new InvalidArgumentError(`Rng state must be a 32-bit unsigned integer, got ${state}`);
    }
    this.s = state;
    return this;
  }

  /** Next draw, uniform on [0, 1), with 32 random bits. */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform on [low, high). */
  uniform(low = 0, high = 1): number {
    return low + (high - low) * this.next();
  }

  /** Standard normal draw by Box–Muller; consumes exactly two uniform draws (no cached spare, so state stays one integer). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Integer uniform on [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`Rng.int bound must be a positive integer, got ${n}`);
    return Math.floor(this.next() * n);
  }
}

/** Options for {@link randomUniform}. */
export interface UniformOptions extends CreateOptions {
  /** Lower end (inclusive), default 0. */
  low?: number;
  /** Upper end (exclusive), default 1. */
  high?: number;
}

/** Options for {@link randomNormal}. */
export interface NormalOptions extends CreateOptions {
  /** Mean, default 0. */
  mean?: number;
  /** Standard deviation, default 1. */
  std?: number;
}

/** A rows×cols matrix of uniform draws from `rng`, filled row by row. */
export function randomUniform(rows: number, cols: number, rng: Rng, options: UniformOptions = {}): Matrix {
  const { low = 0, high = 1 } = options;
  if (!Number.isFinite(low) || !Number.isFinite(high) || high < low) {
    throw new InvalidArgumentError(`randomUniform: need finite low ≤ high, got [${low}, ${high})`);
  }
  const m = zeros(rows, cols, options);
  for (let k = 0; k < m.data.length; k++) m.data[k] = rng.uniform(low, high);
  return m;
}

/** A rows×cols matrix of normal draws from `rng`, filled row by row. */
export function randomNormal(rows: number, cols: number, rng: Rng, options: NormalOptions = {}): Matrix {
  const { mean = 0, std = 1 } = options;
  if (!Number.isFinite(mean) || !Number.isFinite(std) || std < 0) {
    throw new InvalidArgumentError(`randomNormal: need finite mean and std ≥ 0, got mean ${mean}, std ${std}`);
  }
  const m = zeros(rows, cols, options);
  for (let k = 0; k < m.data.length; k++) m.data[k] = mean + std * rng.normal();
  return m;
}
