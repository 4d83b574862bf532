import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Adapter, Target } from '@almora/lora';
import { HOSTILE_JSON_DOCUMENTS as HOSTILE_DOCUMENTS, HOSTILE_JSON_VALUES as HOSTILE_VALUES, mutateSafetensors } from '@almora/peft';
import { randomNormal, type Rng } from '@almora/tensor';
import { caseRng, emptyCounts, type FuzzCounts, pick, tally } from './fuzz-counts.js';
import { AdapterChecker, type Verdict } from './fuzz-worker.js';
import { exportPeft } from './peft.js';

/** Options of {@link fuzzAdapters}. */
export interface AdapterFuzzOptions {
  cases: number;
  seed: number;
  /** A case still loading after this long is a hang (default 10 s). */
  caseTimeoutMs?: number;
  /** The built fuzz-cli.js, whose worker mode runs the loads (default: beside this module's build). */
  worker?: string;
}

const TARGETS: Target[] = ['q', 'k', 'v'];
const CONFIG = 'adapter_config.json';
const WEIGHTS = 'adapter_model.safetensors';

const BASES = 16;

/**
 * Valid adapter folders of random size, targets and dtype, written by exportPeft once each and
 * kept in memory: the cases copy them rather than pay exportPeft's fsyncs every time.
 */
async function validFolders(seed: number, root: string): Promise<Map<string, Buffer>[]> {
  const folders: Map<string, Buffer>[] = [];
  for (let k = 0; k < BASES; k++) {
    const rng = caseRng(seed, -2 - k);
    const dim = 2 + rng.int(5);
    const rank = 1 + rng.int(Math.min(3, dim));
    const targets = TARGETS.filter(() => rng.next() < 0.6);
    if (targets.length === 0) targets.push(pick(rng, TARGETS));
    const adapters: Partial<Record<Target, Adapter>> = {};
    for (const t of targets) adapters[t] = { a: randomNormal(rank, dim, rng), b: randomNormal(dim, rank, rng) };
    const dir = path.join(root, `valid-${k}`);
    await exportPeft(dir, { adapters, rank, alpha: pick(rng, [1, 4, 16, 0.5]) }, rng.next() < 0.5 ? 'F32' : 'F64');
    folders.push(
      new Map([
        [CONFIG, await readFile(path.join(dir, CONFIG))],
        [WEIGHTS, await readFile(path.join(dir, WEIGHTS))],
      ]),
    );
  }
  return folders;
}

/** Replaces the config document or one field of it with text no valid config holds. */
function mutateConfig(rng: Rng, config: Record<string, unknown>): { text: string; what: string } {
  if (rng.next() < 0.3) {
    const text = pick(rng, HOSTILE_DOCUMENTS);
    return { text, what: `${CONFIG} → ${text.slice(0, 40)}` };
  }
  const field = pick(rng, ['r', 'lora_alpha', 'target_modules', 'peft_type', 'use_rslora', '__proto__', 'constructor']);
  const modules = ['[]', '["q_proj","q_proj"]', '["q_proj"]', '["o_proj"]', '[1]', '[null]', '"q_proj"', '["__proto__"]', '["constructor"]', '["toString"]'];
  const value = pick(rng, field === 'target_modules' && rng.next() < 0.7 ? modules : HOSTILE_VALUES);
  const rest = Object.fromEntries(Object.entries(config).filter(([k]) => k !== field));
  // Text-level, so "1e999", "-0" and "__proto__" reach the reader exactly as written.
  const text = rng.next() < 0.2 ? JSON.stringify(rest) : JSON.stringify(rest).replace(/}$/, `,${JSON.stringify(field)}:${value}}`);
  return { text, what: text.length === JSON.stringify(rest).length ? `${CONFIG}: ${field} removed` : `${CONFIG}: ${field} → ${value.slice(0, 40)}` };
}

/** Applies one seeded mutation to a valid adapter folder and says what it did. */
async function mutateFolder(rng: Rng, dir: string): Promise<string> {
  const kind = rng.next();
  if (kind < 0.5) {
    let bytes: Uint8Array = new Uint8Array(await readFile(path.join(dir, WEIGHTS)));
    const whats: string[] = [];
    for (let n = 1 + (rng.next() < 0.2 ? 1 : 0); n > 0; n--) {
      const m = mutateSafetensors(rng, bytes);
      bytes = m.bytes;
      whats.push(m.what);
    }
    await writeFile(path.join(dir, WEIGHTS), bytes);
    return `${WEIGHTS}: ${whats.join('; then ')}`;
  }
  if (kind < 0.85) {
    const m = mutateConfig(rng, JSON.parse(await readFile(path.join(dir, CONFIG), 'utf8')) as Record<string, unknown>);
    await writeFile(path.join(dir, CONFIG), m.text);
    return m.what;
  }
  const file = pick(rng, [CONFIG, WEIGHTS]);
  const action = pick(rng, ['deleted', 'a folder', 'empty', 'swapped']);
  const target = path.join(dir, file);
  const other = await readFile(path.join(dir, file === CONFIG ? WEIGHTS : CONFIG));
  await rm(target);
  if (action === 'a folder') await mkdir(target);
  if (action === 'empty') await writeFile(target, '');
  if (action === 'swapped') await writeFile(target, other);
  return `${file} ${action}`;
}

/**
 * Copies a valid PEFT adapter folder per case, mutates it once (see {@link mutateFolder}) and
 * loads it with importPeft in a worker process that a hang or a crash cannot take down with the
 * suite. A load must end in a typed error or in adapters that match the file bit for bit.
 */
export async function fuzzAdapters(options: AdapterFuzzOptions): Promise<FuzzCounts> {
  const counts = emptyCounts();
  const root = await mkdtemp(path.join(os.tmpdir(), 'almora-fuzz-adapters-'));
  let checker = new AdapterChecker(options.worker);
  try {
    const valid = await validFolders(options.seed, root);
    for (let i = 0; i < options.cases; i++) {
      const rng = caseRng(options.seed, i);
      const dir = path.join(root, String(i));
      await mkdir(dir);
      for (const [file, bytes] of pick(rng, valid)) await writeFile(path.join(dir, file), bytes);
      const what = await mutateFolder(rng, dir);
      const verdict: Verdict = await checker.check(dir, options.caseTimeoutMs ?? 10_000);
      if (verdict.outcome === 'crash' || verdict.outcome === 'hang') {
        checker.close();
        checker = new AdapterChecker(options.worker);
      }
      tally(counts, verdict.outcome, `case ${i} (seed ${options.seed}), ${what}: ${verdict.detail}`);
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    checker.close();
    await rm(root, { recursive: true, force: true });
  }
  return counts;
}
