import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  encodeSafetensors,
  HOSTILE_JSON_DOCUMENTS as HOSTILE_DOCUMENTS,
  HOSTILE_JSON_VALUES as HOSTILE_VALUES,
  mutateSafetensors,
  type SafetensorsTensor,
} from '@almora/peft';
import { randomNormal, type Rng } from '@almora/tensor';
import { CONFIG_KEYS, type TrainConfig } from './config.js';
import { caseRng, emptyCounts, type FuzzCounts, type FuzzOutcome, pick, tally } from './fuzz-counts.js';
import { inParallel, type ProcessResult, runNode } from './fuzz-process.js';

/** Options of {@link fuzzCli}. */
export interface CliFuzzOptions {
  cases: number;
  seed: number;
  /** The built cli.js of `almora`. */
  cliPath: string;
  /** A case still running after this long is killed and counted a hang (default 30 s). */
  caseTimeoutMs?: number;
  /** Cases run at once (default: the cores less one, at most 8). */
  concurrency?: number;
}

const BASE = [
  '--length',
  '32',
  '--dim',
  '4',
  '--sequences',
  '4',
  '--batch-size',
  '2',
  '--steps',
  '3',
  '--method',
  'exact',
  '--compare-exact',
  'false',
  '--quiet',
];

/**
 * Valid values that would make a run big rather than wrong are brought down to these, so a valid
 * mutated run stays small. Sizes past 2^53 stay: no machine holds them, so they must be refused,
 * not attempted. Steps always come down: any count of steps is a valid (if long) job.
 */
const CAPS: Partial<Record<keyof TrainConfig, number>> = { steps: 6, length: 256, sequences: 16, dim: 16, heads: 16, rank: 16, batchSize: 16 };

function bounded(key: string, value: string): string {
  const cap = CAPS[key as keyof TrainConfig];
  const n = Number(value);
  if (cap === undefined || !Number.isInteger(n) || n <= cap) return value;
  return key === 'steps' || n <= Number.MAX_SAFE_INTEGER ? String(cap) : value;
}

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

const FLAG_VALUES = [
  '-1',
  '0',
  'NaN',
  'Infinity',
  '-Infinity',
  '1e308',
  '',
  'abc',
  '1.5',
  '9007199254740993',
  '1000',
  '0x10',
  ' 3',
  '3 ',
  '-0',
  '5e-324',
  'true',
  'false',
  'q,k',
  'q,q',
  ',',
  'auto',
  '__proto__',
  'null',
];

const FLAG_SHAPES: readonly string[][] = [
  ['--stepz', '3'],
  ['--steps'],
  ['--steps', '3', '--steps', '4'],
  ['--steps=4'],
  ['--quiet=true'],
  ['--no-quiet'],
  ['extra'],
  ['--'],
  ['-x'],
  ['--constructor', '1'],
  ['--__proto__', '1'],
  ['--toString'],
  ['--has-own-property', '1'],
  ['--help'],
  ['--resume'],
  ['--config'],
  ['--data', ''],
];

/** A --config file: a valid one with one field or the whole document made hostile. */
function configText(rng: Rng): { text: string; what: string } {
  if (rng.next() < 0.3) return { text: pick(rng, HOSTILE_DOCUMENTS), what: 'whole document' };
  const base = { seed: 3, optimizer: 'sgd', learningRate: 0.05, steps: 3 };
  const key = pick(rng, [...CONFIG_KEYS, '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'unknown']);
  const rest = Object.fromEntries(Object.entries(base).filter(([k]) => k !== key));
  const value = bounded(key, pick(rng, [...HOSTILE_VALUES, '"exact"', '["q","k"]', '64', '2']));
  return { text: JSON.stringify(rest).replace(/}$/, `,${JSON.stringify(key)}:${value}}`), what: `${key}: ${value.slice(0, 40)}` };
}

/** A --data file: a valid dataset with its bytes mutated or one tensor made wrong. */
function dataBytes(rng: Rng): { bytes: Uint8Array; what: string } {
  const tensor = (rows: number, cols: number): SafetensorsTensor => ({
    dtype: 'F64',
    shape: [rows, cols],
    data: Float64Array.from(randomNormal(rows, cols, rng, { std: 0.3 }).toFlat()),
  });
  const tensors: Record<string, SafetensorsTensor> = { w_q: tensor(4, 4), w_k: tensor(4, 4), w_v: tensor(4, 4) };
  for (let n = 0; n < 4; n++) Object.assign(tensors, { [`x.${n}`]: tensor(16, 4), [`y.${n}`]: tensor(16, 4) });
  const edit = rng.int(8);
  if (edit === 0) tensors['x.1'].data[rng.int(64)] = pick(rng, [Number.NaN, Infinity, -Infinity]);
  if (edit === 1) Object.assign(tensors, { 'x.0': tensor(0, 4), 'y.0': tensor(0, 4) });
  if (edit === 2) Object.assign(tensors, { 'x.4': tensor(16, 4) });
  if (edit === 3) Object.assign(tensors, { w_v: { dtype: 'F64', shape: [16], data: new Float64Array(16) } });
  if (edit === 4) Object.assign(tensors, { w_q: tensor(3, 3) });
  // Edit 0 puts a non-finite value in the data on purpose: the CLI, not the encoder, must refuse it.
  const valid = encodeSafetensors({ tensors, metadata: {} }, { allowNonFinite: true });
  if (edit < 5) return { bytes: valid, what: `dataset edit ${edit}` };
  const m = mutateSafetensors(rng, valid);
  return { bytes: m.bytes, what: m.what };
}

/** Builds case `i`'s arguments in `dir` and says what it mutated. */
async function caseArgs(rng: Rng, dir: string): Promise<{ args: string[]; what: string }> {
  const runDir = path.join(dir, 'run');
  const kind = rng.next();
  if (kind < 0.4) {
    const key = pick(rng, CONFIG_KEYS);
    const flag = `--${kebab(key)}`;
    const value = bounded(key, pick(rng, FLAG_VALUES));
    const args = [...BASE, '--run-dir', runDir];
    const at = args.indexOf(flag);
    if (at >= 0) args[at + 1] = value;
    else args.push(flag, value);
    return { args, what: `${flag} ${JSON.stringify(value)}` };
  }
  if (kind < 0.55) {
    const extra = pick(rng, FLAG_SHAPES);
    return { args: [...BASE, '--run-dir', runDir, ...extra], what: extra.join(' ') };
  }
  if (kind < 0.75) {
    const file = path.join(dir, 'config.json');
    const { text, what } = configText(rng);
    await writeFile(file, text);
    return { args: [...BASE, '--run-dir', runDir, '--config', file], what: `--config ${what}` };
  }
  if (kind < 0.9) {
    const file = path.join(dir, 'data.safetensors');
    const { bytes, what } = dataBytes(rng);
    await writeFile(file, bytes);
    return { args: [...BASE, '--run-dir', runDir, '--data', file], what: `--data ${what}` };
  }
  const place = pick(rng, ['a file', 'under a file', 'read-only', 'empty', 'too long']);
  const file = path.join(dir, 'file');
  await writeFile(file, 'x');
  const readOnly = path.join(dir, 'ro');
  await mkdir(readOnly);
  await chmod(readOnly, 0o555);
  const target = {
    'a file': file,
    'under a file': path.join(file, 'run'),
    'read-only': path.join(readOnly, 'run'),
    empty: '',
    'too long': path.join(dir, 'r'.repeat(300)),
  }[place]!;
  return { args: [...BASE, '--run-dir', target], what: `--run-dir ${place}` };
}

// Names only the engine uses: a message with one of these escaped from a bug, not from a check.
const ENGINE =
  /\n\s+at |almora: unexpected error|TypeError|RangeError|ReferenceError|SyntaxError|Cannot read properties|Cannot convert|is not a function|is not iterable|Maximum call stack|Invalid typed array length|Invalid array length|allocation failed|out of memory/;

function classify(result: ProcessResult, timeoutMs: number): { outcome: FuzzOutcome; detail: string } {
  const stderr = result.stderr.trim();
  if (result.timedOut) return { outcome: 'hang', detail: `still running after ${timeoutMs} ms` };
  if (result.signal) return { outcome: 'crash', detail: `killed by ${result.signal}: ${stderr.slice(-200)}` };
  if (result.code === 0) return { outcome: 'ok', detail: '' };
  // One message, though it may run over lines (node:util's parseArgs explains itself in three).
  if (result.code === 1 && stderr.startsWith('almora: ') && !stderr.includes('\nalmora: ') && !ENGINE.test(stderr))
    return { outcome: 'typedError', detail: stderr };
  return { outcome: 'crash', detail: `exit ${result.code}: ${stderr.slice(0, 300)}` };
}

/**
 * Spawns `node cli.js train --task teacher` on a small valid job with one thing mutated per case — a flag's value,
 * the flags themselves, a --config file, a --data file or the --run-dir — and sorts each run into
 * ok, a typed error (exit 1, one `almora: …` message, no stack or engine error), a crash or a hang.
 */
export async function fuzzCli(options: CliFuzzOptions): Promise<FuzzCounts> {
  const counts = emptyCounts();
  const timeoutMs = options.caseTimeoutMs ?? 30_000;
  const root = await mkdtemp(path.join(os.tmpdir(), 'almora-fuzz-cli-'));
  try {
    const verdicts = await inParallel(options.cases, options.concurrency ?? Math.min(8, Math.max(1, os.availableParallelism() - 1)), async (i) => {
      const dir = path.join(root, String(i));
      await mkdir(dir);
      const { args, what } = await caseArgs(caseRng(options.seed, i), dir);
      const verdict = classify(await runNode([options.cliPath, 'train', '--task', 'teacher', ...args], { cwd: dir, timeoutMs }), timeoutMs);
      await chmod(path.join(dir, 'ro'), 0o755).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
      return { ...verdict, what: `case ${i} (seed ${options.seed}), ${what}` };
    });
    for (const v of verdicts) tally(counts, v.outcome, `${v.what}: ${v.detail}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return counts;
}
