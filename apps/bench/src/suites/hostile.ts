import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { featureRank } from '@almora/kernels';
import { attention, type AttentionOptions, loraGradients, type LoraProblem, predictedHeadCost } from '@almora/lora';
import { AlmoraError, fromFlat, type Matrix, randomNormal, Rng, scale, sub, maxAbs } from '@almora/tensor';
import type { Row, Suite, SuiteContext, SuiteReport } from '../harness.js';

/** The counts one fuzz category reports; every count but `cases`, `ok` and `typedErrors` must be 0. */
export interface FuzzCounts {
  cases: number;
  /** Ran and checked out. */
  ok: number;
  /** Refused with an AlmoraError (the right answer to a hostile input). */
  typedErrors: number;
  /** A wrong answer: an error above its certified bound, or bad input accepted. */
  violations: number;
  /** Any other exception. */
  crashes: number;
  /** Cases over the time limit. */
  hangs: number;
  /** Saved work lost (the train fuzz's kill-and-resume loops). */
  dataLost: number;
  /** Short descriptions of what went wrong, for the report. */
  examples: string[];
}

function emptyCounts(): FuzzCounts {
  return { cases: 0, ok: 0, typedErrors: 0, violations: 0, crashes: 0, hangs: 0, dataLost: 0, examples: [] };
}

/** Seconds one in-process case may take before it counts as a hang: ten times what its bounded work needs on this machine. */
const CASE_LIMIT_SECONDS = 60;

/** Predicted multiply-adds a forced fast case may take (~5 s here), so that a slow case means a hang, not a big job. */
const FORCED_WORK = 3e9;

/** One random problem across the regime boundary. */
interface Draw {
  length: number;
  headDim: number;
  heads: number;
  gamma: number;
  causal: boolean;
  dtype: 'float64' | 'float32';
  epsilon: number;
  options: AttentionOptions;
  label: string;
}

const pick = <T>(rng: Rng, values: readonly T[]): T => values[rng.int(values.length)];

function draw(rng: Rng, maxLength: number): Draw {
  const length = 16 + rng.int(maxLength - 15);
  const headDim = pick(rng, [2, 4, 8, 16]);
  const heads = 1 + rng.int(2);
  // Γ log-uniform in [0.1, 4]: from deep inside the efficient regime to well past √log L.
  const gamma = 0.1 * 40 ** rng.next();
  const causal = rng.next() < 0.5;
  const dtype = rng.next() < 0.5 ? 'float32' : 'float64';
  const epsilon = pick(rng, [1e-2, 1e-3, 1e-4, 1e-6, 1e-8]);
  // A third forced fast (degree 1–4, lowered until its predicted work is bounded): its bound must hold whether or not it meets ε.
  const forced = rng.next() < 1 / 3;
  const variant = forced || rng.next() < 0.3 ? pick(rng, ['chained', 'autodiff'] as const) : undefined;
  let degree = 1 + rng.int(4);
  while (forced && degree > 1 && predictedHeadCost(length, length, headDim, featureRank(headDim, degree), variant!, causal).fast! * heads > FORCED_WORK)
    degree--;
  const options: AttentionOptions = {
    method: forced ? 'fast' : 'auto',
    epsilon,
    polynomial: pick(rng, ['auto', 'taylor', 'chebyshev'] as const),
    ...(forced ? { degree } : {}),
    ...(variant ? { variant } : {}),
  };
  const label = `L=${length} d_h=${headDim} H=${heads} Γ=${gamma.toFixed(2)} ${causal ? 'causal ' : ''}${dtype} ε=${epsilon} ${JSON.stringify(options)}`;
  return { length, headDim, heads, gamma, causal, dtype, epsilon, options, label };
}

function cast(m: Matrix, dtype: 'float64' | 'float32'): Matrix {
  return dtype === 'float64' ? m : fromFlat(m.rows, m.cols, Float32Array.from(m.toFlat()), { dtype });
}

/** Q and K with √β·max|entry| = Γ, V standard normal; the float64 copies are what the float32 ones round to. */
function operands(d: Draw, rng: Rng): { q: Matrix; k: Matrix; v: Matrix } {
  const width = d.heads * d.headDim;
  const rootBeta = Math.sqrt(1 / Math.sqrt(d.headDim));
  const scaled = (m: Matrix) => scale(m, d.gamma / (rootBeta * maxAbs(m)));
  const round = (m: Matrix) => cast(cast(m, d.dtype), 'float64');
  return {
    q: round(scaled(randomNormal(d.length, width, rng))),
    k: round(scaled(randomNormal(d.length, width, rng))),
    v: round(randomNormal(d.length, width, rng)),
  };
}

/**
 * 'auto' against exact attention: for every fast head, |Ô − O| ≤ attentionBound·max_j|V_jc| in
 * every entry (the certified softmax bound summed over a row), plus a last rounding of Ô itself.
 * An exact head is held to the same check with its own (rounding) bound.
 */
function checkAttention(d: Draw, rng: Rng, counts: FuzzCounts, fastHeads: { checked: number }): void {
  const { q, k, v } = operands(d, rng);
  const reference = attention(q, k, v, { method: 'exact', heads: d.heads, causal: d.causal });
  reference.dispose();
  const run = attention(cast(q, d.dtype), cast(k, d.dtype), cast(v, d.dtype), { ...d.options, heads: d.heads, causal: d.causal });
  run.dispose();
  const lastRounding = d.dtype === 'float32' ? 2 ** -23 : 2 ** -52;
  const difference = sub(cast(run.output, 'float64'), reference.output);
  fastHeads.checked += run.report.heads.filter((h) => h.chosen === 'fast').length;
  for (const head of run.report.heads) {
    for (let c = head.head * d.headDim; c < (head.head + 1) * d.headDim; c++) {
      let vMax = 0;
      for (let j = 0; j < v.rows; j++) vMax = Math.max(vMax, Math.abs(v.get(j, c)));
      const allowed = (head.attentionBound + lastRounding) * vMax * (1 + 1e-9);
      for (let i = 0; i < q.rows; i++) {
        const error = Math.abs(difference.get(i, c));
        if (error > allowed) {
          counts.violations++;
          counts.examples.push(`${d.label}: head ${head.head} ${head.chosen} output error ${error.toPrecision(3)} > certified ${allowed.toPrecision(3)}`);
          return;
        }
      }
    }
  }
  counts.ok++;
}

/** The same problem through loraGradients: a float64 fast result's gradient error stays within its certified absolute bound. */
function checkGradients(d: Draw, rng: Rng, counts: FuzzCounts): void {
  const dim = d.heads * d.headDim;
  const rank = 1 + rng.int(3);
  const { q: x } = operands(d, rng);
  const small = (rows: number, cols: number) => scale(randomNormal(rows, cols, rng), 0.3 / Math.sqrt(dim));
  const identity = fromFlat(
    dim,
    dim,
    Float64Array.from({ length: dim * dim }, (_, i) => (i % (dim + 1) === 0 ? 1 : 0)),
  );
  const problem: LoraProblem = {
    x,
    target: randomNormal(d.length, dim, rng),
    weights: { q: identity, k: identity, v: small(dim, dim) },
    adapters: { q: { a: small(rank, dim), b: small(dim, rank) }, v: { a: small(rank, dim), b: small(dim, rank) } },
    alpha: rank,
    heads: d.heads,
    causal: d.causal,
  };
  const exact = loraGradients(problem, { method: 'exact' });
  const fast = loraGradients(problem, d.options);
  for (const target of ['q', 'v'] as const) {
    const bound = fast.report.gradientBound?.[target];
    if (!bound) continue;
    for (const part of ['a', 'b'] as const) {
      const error = maxAbs(sub(fast.grads[target]![part], exact.grads[target]![part]));
      if (error > bound[part].absolute * (1 + 1e-9) + 1e-12 * maxAbs(exact.grads[target]![part])) {
        counts.violations++;
        counts.examples.push(`${d.label}: ∂${target}.${part} error ${error.toPrecision(3)} > certified ${bound[part].absolute.toPrecision(3)}`);
        return;
      }
    }
  }
  counts.ok++;
}

/** Inputs no call should accept: each must be refused with an AlmoraError. */
const HOSTILE: readonly { name: string; run: (rng: Rng) => unknown }[] = [
  { name: 'NaN in Q', run: (rng) => attention(poke(randomNormal(32, 4, rng), Number.NaN), randomNormal(32, 4, rng), randomNormal(32, 4, rng)) },
  {
    name: '+Infinity in V',
    run: (rng) => attention(randomNormal(32, 4, rng), randomNormal(32, 4, rng), poke(randomNormal(32, 4, rng), Number.POSITIVE_INFINITY)),
  },
  { name: 'K narrower than Q', run: (rng) => attention(randomNormal(32, 4, rng), randomNormal(32, 3, rng), randomNormal(32, 4, rng)) },
  { name: 'V shorter than K', run: (rng) => attention(randomNormal(32, 4, rng), randomNormal(32, 4, rng), randomNormal(31, 4, rng)) },
  { name: 'causal with L_q ≠ L_k', run: (rng) => attention(randomNormal(16, 4, rng), randomNormal(32, 4, rng), randomNormal(32, 4, rng), { causal: true }) },
  {
    name: 'forced degree 400',
    run: (rng) => attention(randomNormal(16, 8, rng), randomNormal(16, 8, rng), randomNormal(16, 8, rng), { method: 'fast', degree: 400 }),
  },
  {
    name: 'memoryBudget of 1 KiB',
    run: (rng) => attention(randomNormal(512, 4, rng), randomNormal(512, 4, rng), randomNormal(512, 4, rng), { memoryBudget: 1024 }),
  },
  { name: 'ε = 0', run: (rng) => attention(randomNormal(16, 4, rng), randomNormal(16, 4, rng), randomNormal(16, 4, rng), { epsilon: 0 }) },
  { name: 'heads not dividing the width', run: (rng) => attention(randomNormal(16, 6, rng), randomNormal(16, 6, rng), randomNormal(16, 6, rng), { heads: 4 }) },
  { name: 'fractional maxDegree', run: (rng) => attention(randomNormal(16, 4, rng), randomNormal(16, 4, rng), randomNormal(16, 4, rng), { maxDegree: 2.5 }) },
  {
    name: 'gradientEpsilon NaN',
    run: (rng) =>
      loraGradients(
        {
          x: randomNormal(16, 4, rng),
          target: randomNormal(16, 4, rng),
          weights: { q: randomNormal(4, 4, rng), k: randomNormal(4, 4, rng), v: randomNormal(4, 4, rng) },
          adapters: { q: { a: randomNormal(1, 4, rng), b: randomNormal(4, 1, rng) } },
          alpha: 1,
        },
        { gradientEpsilon: Number.NaN },
      ),
  },
  { name: 'float32 Q with float64 K', run: (rng) => attention(cast(randomNormal(16, 4, rng), 'float32'), randomNormal(16, 4, rng), randomNormal(16, 4, rng)) },
  {
    name: 'Q and K near the largest float64',
    run: (rng) => attention(scale(randomNormal(32, 4, rng), 3e307), scale(randomNormal(32, 4, rng), 3e307), randomNormal(32, 4, rng)),
  },
];

function poke(m: Matrix, value: number): Matrix {
  m.set(m.rows - 1, m.cols - 1, value);
  return m;
}

/**
 * Runs one case, sorting its outcome into the counts. `expectRefusal` marks a hostile input, whose
 * acceptance is a violation; `mayRefuse` is the code a valid input may still be refused with (a
 * forced fast path out of its regime).
 */
function runCase(counts: FuzzCounts, label: string, expectRefusal: boolean, body: () => void, mayRefuse?: string): void {
  counts.cases++;
  const began = performance.now();
  try {
    body();
    if (expectRefusal) {
      counts.violations++;
      counts.examples.push(`${label}: accepted`);
    }
  } catch (error) {
    if (error instanceof AlmoraError && (expectRefusal || error.code === mayRefuse)) counts.typedErrors++;
    else if (error instanceof AlmoraError) {
      counts.violations++;
      counts.examples.push(`${label}: refused a valid problem: ${error.message.slice(0, 160)}`);
    } else {
      counts.crashes++;
      counts.examples.push(`${label}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`.slice(0, 240));
    }
  }
  if ((performance.now() - began) / 1000 > CASE_LIMIT_SECONDS) {
    counts.hangs++;
    counts.examples.push(`${label}: took over ${CASE_LIMIT_SECONDS} s`);
  }
}

/** The library part of the fuzz: random problems through 'auto' or a forced fast path (attention and gradients), and hostile inputs. */
export function fuzzLibrary(
  cases: number,
  maxLength: number,
  seed: number,
): { attention: FuzzCounts; gradients: FuzzCounts; inputs: FuzzCounts; fastHeads: number } {
  const rng = new Rng(seed);
  const counts = { attention: emptyCounts(), gradients: emptyCounts(), inputs: emptyCounts() };
  const fastHeads = { checked: 0 };
  for (let n = 0; n < cases; n++) {
    const d = draw(rng, maxLength);
    const mayRefuse = d.options.method === 'fast' ? 'OUT_OF_REGIME' : undefined;
    runCase(counts.attention, d.label, false, () => checkAttention(d, rng, counts.attention, fastHeads), mayRefuse);
    if (d.dtype === 'float64') runCase(counts.gradients, d.label, false, () => checkGradients(d, rng, counts.gradients), mayRefuse);
    const hostile = HOSTILE[n % HOSTILE.length];
    runCase(counts.inputs, hostile.name, true, () => void hostile.run(rng));
  }
  return { ...counts, fastHeads: fastHeads.checked };
}

/** apps/train's built fuzz script, found from this bundle upwards (the bench spawns it: an app never imports another app). */
function trainFuzzScript(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (dir !== path.dirname(dir)) {
    const candidate = path.join(dir, 'apps', 'train', 'dist', 'fuzz-cli.js');
    if (existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  return undefined;
}

/** The train app's fuzz categories, as its script names them in its JSON. */
const TRAIN_CATEGORIES = {
  adapters: 'mutated PEFT adapter files (importPeft)',
  cli: 'mutated almora train CLI inputs',
  killResume: 'kill-and-resume loops (saved work byte for byte)',
} as const;

/**
 * The train app's fuzz (adapter files, CLI inputs, kill-and-resume), run as a child process: it
 * prints one FuzzCounts per category as JSON and exits 0 when clean, 1 when it found problems
 * (which are counted here), anything else when it could not run.
 */
function fuzzTrain(sizes: { adapters: number; cli: number; killResume: number }, seed: number): Record<string, FuzzCounts> | { error: string } {
  const script = trainFuzzScript();
  if (!script) return { error: 'apps/train/dist/fuzz-cli.js is missing: build @almora/train first (pnpm build)' };
  const args = [
    script,
    '--adapters',
    String(sizes.adapters),
    '--cli',
    String(sizes.cli),
    '--kill-resume',
    String(sizes.killResume),
    '--seed',
    String(seed),
    '--json',
  ];
  const run = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (run.status !== 0 && run.status !== 1) {
    // The error's message, not the stack frames below it.
    const message = run.stderr
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('at '));
    return { error: `fuzz-cli exited ${run.status ?? run.signal}: ${message.slice(-3).join(' ').slice(0, 300)}` };
  }
  let parsed: Partial<Record<keyof typeof TRAIN_CATEGORIES, FuzzCounts>>;
  try {
    parsed = JSON.parse(run.stdout) as typeof parsed;
  } catch {
    return { error: `fuzz-cli printed no JSON: ${run.stdout.slice(0, 200)}` };
  }
  const out: Record<string, FuzzCounts> = {};
  for (const [key, name] of Object.entries(TRAIN_CATEGORIES) as [keyof typeof TRAIN_CATEGORIES, string][]) {
    const counts = parsed[key];
    if (!counts) return { error: `fuzz-cli's JSON has no "${key}" counts` };
    out[name] = counts;
  }
  return out;
}

const MUST_BE_ZERO = ['violations', 'crashes', 'hangs', 'dataLost'] as const;

/** The hostile-input fuzz of issue #12: random problems across the regime boundary, hostile inputs, and the train app's files, CLI and kill-and-resume. */
export const hostileSuite: Suite = {
  name: 'hostile',
  title: 'Hostile inputs: nothing lost, nothing hangs, nothing silently wrong',
  async run(context: SuiteContext): Promise<SuiteReport> {
    const cases = context.quick ? 24 : 600;
    const maxLength = context.quick ? 128 : 2048;
    const trainSizes = { adapters: 2000, cli: 200, killResume: 20 };
    context.progress.start('hostile', 2);
    const began = performance.now();
    const library = fuzzLibrary(cases, maxLength, context.seed);
    context.progress.tick('library');
    // Quick mode leaves the train fuzz to apps/train's own tests, which run it at their quick size.
    const train = context.quick ? { error: "quick mode; apps/train's tests run it at a quick size" } : fuzzTrain(trainSizes, context.seed);
    context.progress.tick('train');
    context.progress.finish();
    const notes: string[] = [];
    const categories: [string, FuzzCounts][] = [
      [`attention, 'auto' or forced fast, vs exact (output within the certified bound; ${library.fastHeads} fast heads)`, library.attention],
      ['loraGradients: fast gradients within their certified bound (float64)', library.gradients],
      ['hostile library inputs (each must be refused with a typed error)', library.inputs],
    ];
    // A train fuzz that was built but could not run checked nothing: that is a failure, not a skip.
    const trainFailed = 'error' in train && !context.quick && trainFuzzScript() !== undefined;
    if ('error' in train) notes.push(`train fuzz ${trainFailed ? 'FAILED' : 'skipped'}: ${train.error}`);
    else for (const [name, counts] of Object.entries(train)) categories.push([`train: ${name}`, counts]);
    const rows: Row[] = categories.map(([category, c]) => ({
      category,
      cases: c.cases,
      ok: c.ok,
      typedErrors: c.typedErrors,
      violations: c.violations,
      crashes: c.crashes,
      hangs: c.hangs,
      dataLost: c.dataLost,
    }));
    const total = (key: keyof Omit<FuzzCounts, 'examples'>) => categories.reduce((sum, [, c]) => sum + c[key], 0);
    const failing = MUST_BE_ZERO.filter((key) => total(key) > 0);
    const verdict =
      failing.length > 0
        ? `NOT all zero: ${failing.join(', ')}`
        : trainFailed
          ? 'every count that must be 0 is 0, but the train fuzz FAILED to run (see notes)'
          : 'every count that must be 0 is 0';
    const findings = [
      `${total('cases')} cases in ${((performance.now() - began) / 1000).toFixed(0)} s: ${total('ok')} ran and checked out, ${total('typedErrors')} typed errors; violations ${total('violations')}, crashes ${total('crashes')}, hangs ${total('hangs')}, data lost ${total('dataLost')} — ${verdict}.`,
      ...categories.flatMap(([name, c]) => c.examples.slice(0, 5).map((e) => `${name}: ${e}`)),
    ];
    return {
      suite: 'hostile',
      title: hostileSuite.title,
      parameters: { cases, maxLength, ...(context.quick ? {} : trainSizes), caseLimitSeconds: CASE_LIMIT_SECONDS, seed: context.seed },
      rows,
      rawTimings: {},
      findings,
      notes: [
        `Random problems: L 16–${maxLength}, d_h 2–16, 1–2 heads, Γ log-uniform in 0.1–4, causal or not, float32 or float64, ε 1e-2…1e-8, every polynomial family and variant; 'auto' (its own memory estimate and certificate, rounding included) — or, in a third of the cases, a forced fast path of degree 1–4 (lowered until its predicted work is under ${FORCED_WORK.toExponential(0)} multiply-adds), whose bound must hold whether or not it meets ε (out of its regime it may refuse with OutOfRegimeError) — against exact float64 attention on the same (rounded) inputs. A violation is an output entry off by more than attentionBound·max|V| — what the certificate promises — or a float64 fast gradient off by more than its certified absolute bound.`,
        `Hostile inputs cycle through ${HOSTILE.length} kinds (${HOSTILE.map((h) => h.name).join('; ')}); accepting one is a violation, any error that is not an AlmoraError a crash. A case over ${CASE_LIMIT_SECONDS} s counts as a hang.`,
        ...notes,
      ],
      plots: [],
    };
  },
};
