import { Worker } from 'node:worker_threads';
import { randomNormal, Rng } from '@almora/tensor';
import { afterAll, describe, expect, it } from 'vitest';
import {
  encodePeftAdapter,
  HOSTILE_JSON_DOCUMENTS,
  HOSTILE_JSON_VALUES,
  loraConfig,
  mutateSafetensors,
  type PeftFiles,
  type SafetensorsDType,
} from '../src/index.js';

// Thousands of mutated adapter folders, each loaded by the built decodePeftAdapter in a worker
// thread (test/fuzz-worker.mjs) that a hang or a crash cannot take down with the suite. Every load
// must end in a typed error or in exactly the file's contents, within a few times the file's
// size of memory and within the time limit.

const CASES = 3000;
const SEED = 16;
const CASE_TIMEOUT_MS = 10_000;

type Outcome = 'ok' | 'typedError' | 'violation' | 'crash' | 'hang';
interface Verdict {
  outcome: Outcome;
  detail: string;
}

/** The worker, restarted after a hang or a crash. */
class Loader {
  private worker = this.start();
  private answer: ((verdict: Verdict) => void) | undefined;

  private start(): Worker {
    const worker = new Worker(new URL('./fuzz-worker.mjs', import.meta.url));
    worker.on('message', (verdict: Verdict) => this.answer?.(verdict));
    worker.on('error', (error) => this.answer?.({ outcome: 'crash', detail: `worker died: ${error.message.slice(0, 200)}` }));
    return worker;
  }

  load(files: PeftFiles): Promise<Verdict> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done({ outcome: 'hang', detail: `no answer in ${CASE_TIMEOUT_MS} ms` }), CASE_TIMEOUT_MS);
      const done = (verdict: Verdict) => {
        clearTimeout(timer);
        this.answer = undefined;
        if (verdict.outcome === 'hang' || verdict.outcome === 'crash') {
          void this.worker.terminate();
          this.worker = this.start();
        }
        resolve(verdict);
      };
      this.answer = done;
      this.worker.postMessage(files);
    });
  }

  close(): Promise<number> {
    return this.worker.terminate();
  }
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.int(items.length)];

/** Module paths of three model families, so keys, suffix lists and regexes all meet real shapes. */
const FAMILIES = [
  (l: number) => [`model.layers.${l}.self_attn.q_proj`, `model.layers.${l}.self_attn.v_proj`, `model.layers.${l}.mlp.down_proj`],
  (l: number) => [`transformer.h.${l}.attn.c_attn`, `transformer.h.${l}.mlp.c_fc`],
  (l: number) => [`encoder.layer.${l}.attention.self.query`, `encoder.layer.${l}.attention.self.value`],
];

/** A valid adapter folder: random family, layers, r, dtype, and target_modules as a list, a regex or all-linear. */
function validFolder(rng: Rng): PeftFiles {
  const family = pick(rng, FAMILIES);
  const modules = Array.from({ length: 1 + rng.int(2) }, (_, l) => family(l)).flat();
  const r = 1 + rng.int(3);
  const lastNames = [...new Set(modules.map((m) => m.slice(m.lastIndexOf('.') + 1)))];
  const target_modules = pick(rng, [lastNames, `.*\\.(${lastNames.join('|')})`, 'all-linear']);
  const rankPattern = rng.next() < 0.3 ? { [lastNames[0]]: r + 1 } : {};
  const config = loraConfig({
    r,
    lora_alpha: pick(rng, [1, 8, 16, 0.5]),
    target_modules,
    rank_pattern: rankPattern,
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: 'base',
  });
  const adapter = {
    config,
    modules: Object.fromEntries(
      modules.map((m) => {
        const rank = Object.keys(rankPattern).some((k) => m.endsWith(`.${k}`)) ? r + 1 : r;
        const [out, inner] = [2 + rng.int(4), 2 + rng.int(4)];
        return [m, { lora_A: randomNormal(rank, inner, rng), lora_B: randomNormal(out, rank, rng) }];
      }),
    ),
  };
  return encodePeftAdapter(adapter, { dtype: pick(rng, ['F64', 'F32', 'F16', 'BF16'] satisfies SafetensorsDType[]) });
}

/** Patterns no loader should run in exponential time, or should refuse: nested repeats, lookaround, backreferences, huge programs. */
const HOSTILE_PATTERNS = [
  '"(a|a)*b"',
  '"(a+)+$"',
  '"((((((((((.*)*)*)*)*)*)*)*)*)*)*x"',
  '"(?=q)q_proj"',
  '"(q)\\\\1"',
  '"\\\\bq"',
  '"["',
  '"a{100000}"',
  '"(.*){5000}"',
  `"${'q|'.repeat(30_000)}q"`,
  '".*"',
  '""',
  '"all-linear"',
  '"(?P<x>.*)\\\\.q_proj"',
  '"[^.]*"',
];
const FIELDS = [
  'r',
  'lora_alpha',
  'target_modules',
  'exclude_modules',
  'rank_pattern',
  'alpha_pattern',
  'peft_type',
  'use_rslora',
  'fan_in_fan_out',
  'bias',
  'use_dora',
  'modules_to_save',
  'layers_to_transform',
  'lora_dropout',
  'task_type',
  '__proto__',
  'constructor',
];
const TABLES = ['{"q_proj": 0}', '{"(a|a)*b": 2}', '{"__proto__": 2}', '{"q_proj": 1e999}', '{"q_proj": 2, "q_proj": 3}', '{".*": 1}'];

/** One field of the config replaced (text-level, so `1e999`, `-0` and duplicate keys reach the reader as written) or removed, or the whole document replaced. */
function mutateConfig(rng: Rng, text: string): { text: string; what: string } {
  if (rng.next() < 0.15) {
    const whole = pick(rng, HOSTILE_JSON_DOCUMENTS);
    return { text: whole, what: `config → ${whole.slice(0, 40)}` };
  }
  const field = pick(rng, FIELDS);
  const pool = field === 'target_modules' || field === 'exclude_modules' ? HOSTILE_PATTERNS : field.endsWith('_pattern') ? TABLES : HOSTILE_JSON_VALUES;
  const value = pick(rng, rng.next() < 0.8 ? pool : HOSTILE_JSON_VALUES);
  const kept = text.replace(new RegExp(`\\n  ${JSON.stringify(field)}: [^\\n]*?,?(?=\\n)`), '');
  if (rng.next() < 0.15) return { text: kept.replace(/,(\n})/, '$1'), what: `${field} removed` };
  return { text: kept.replace(/\n}\n?$/, `,\n  ${JSON.stringify(field)}: ${value}\n}`), what: `${field} → ${value.slice(0, 40)}` };
}

const loader = new Loader();
afterAll(() => loader.close());

describe('fuzz: mutated adapter folders meet decodePeftAdapter', () => {
  it(`${CASES} cases end in a typed error or the file's exact contents: no crash, no hang, no memory blow-up`, async () => {
    const counts: Record<Outcome, number> = { ok: 0, typedError: 0, violation: 0, crash: 0, hang: 0 };
    const bad: string[] = [];
    const valid = Array.from({ length: 24 }, (_, k) => validFolder(new Rng(SEED * 1000 + k)));
    for (let i = 0; i < CASES; i++) {
      const rng = new Rng((Math.imul(SEED, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0);
      let { config, weights } = pick(rng, valid);
      const whats: string[] = [];
      const kind = rng.next();
      if (kind < 0.6) {
        for (let n = rng.next() < 0.2 ? 2 : 1; n > 0; n--) {
          const m = mutateSafetensors(rng, weights);
          weights = m.bytes;
          whats.push(m.what);
        }
      }
      if (kind >= 0.45) {
        const m = mutateConfig(rng, config);
        config = m.text;
        whats.push(m.what);
      }
      const verdict = await loader.load({ config, weights });
      counts[verdict.outcome]++;
      if (verdict.outcome !== 'ok' && verdict.outcome !== 'typedError' && bad.length < 8)
        bad.push(`case ${i}: ${whats.join('; ')}: ${verdict.outcome}: ${verdict.detail}`);
    }
    console.log(
      `fuzz (seed ${SEED}): ${CASES} files tried, ${counts.ok} loaded, ${counts.typedError} typed errors, ${counts.violation} wrong loads, ${counts.crash} crashes, ${counts.hang} hangs`,
    );
    expect(bad).toEqual([]);
    expect(counts.ok + counts.typedError).toBe(CASES);
    expect(counts.ok).toBeGreaterThan(CASES / 20);
    expect(counts.typedError).toBeGreaterThan(CASES / 2);
  });
});
