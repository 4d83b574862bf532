import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Target } from '@almora/lora';
import { decodeSafetensors, type SafetensorsFile } from '@almora/peft';
import { AlmoraError } from '@almora/tensor';
import type { FuzzOutcome } from './fuzz-counts.js';
import { importPeft, type PeftAdapters } from './peft.js';

/** The outcome of one load and why. */
export interface Verdict {
  outcome: FuzzOutcome;
  detail: string;
}

// PEFT's names, spelled out again here so the check does not trust the code it checks.
const name = (t: Target, which: 'A' | 'B') => `base_model.model.self_attn.${t}_proj.lora_${which}.weight`;

/**
 * What is wrong with adapters that importPeft returned, or '' if nothing: every tensor of the file
 * used, r and α finite and as configured, each B (d_in×r) equal to lora_Aᵀ and each A (r×d_out)
 * equal to lora_Bᵀ value for value, all finite.
 */
function inconsistency(peft: PeftAdapters, file: SafetensorsFile, config: Record<string, unknown>): string {
  if (!Number.isSafeInteger(peft.rank) || peft.rank <= 0 || peft.rank !== config.r) return `rank ${peft.rank} but the config says ${String(config.r)}`;
  if (!Number.isFinite(peft.alpha) || !(peft.alpha > 0) || peft.alpha !== config.lora_alpha)
    return `alpha ${peft.alpha} but the config says ${String(config.lora_alpha)}`;
  const loaded = Object.keys(peft.adapters) as Target[];
  const unused = Object.keys(file.tensors).filter((n) => !loaded.some((t) => n === name(t, 'A') || n === name(t, 'B')));
  if (unused.length > 0) return `loaded ${loaded.join(',') || 'no adapters'} and silently dropped ${unused.join(', ')}`;
  for (const t of loaded) {
    const { a, b } = peft.adapters[t]!;
    const loraA = file.tensors[name(t, 'A')];
    const loraB = file.tensors[name(t, 'B')];
    if (b.cols !== peft.rank || a.rows !== peft.rank) return `${t}: B is ${b.rows}×${b.cols} and A ${a.rows}×${a.cols} for r = ${peft.rank}`;
    if (loraA.shape.join() !== `${b.cols},${b.rows}` || loraB.shape.join() !== `${a.cols},${a.rows}`) return `${t}: shapes differ from the file's`;
    for (let i = 0; i < b.rows; i++) {
      for (let j = 0; j < b.cols; j++)
        if (!Object.is(b.get(i, j), loraA.data[j * b.rows + i]) || !Number.isFinite(b.get(i, j)))
          return `${t}: B(${i},${j}) = ${b.get(i, j)}, file ${loraA.data[j * b.rows + i]}`;
    }
    for (let i = 0; i < a.rows; i++) {
      for (let j = 0; j < a.cols; j++)
        if (!Object.is(a.get(i, j), loraB.data[j * a.rows + i]) || !Number.isFinite(a.get(i, j)))
          return `${t}: A(${i},${j}) = ${a.get(i, j)}, file ${loraB.data[j * a.rows + i]}`;
    }
  }
  return '';
}

/** Loads one adapter folder and judges the outcome, including how much memory the load kept. */
export async function checkAdapterFolder(dir: string): Promise<Verdict> {
  const size = await stat(path.join(dir, 'adapter_model.safetensors')).then(
    (s) => s.size,
    () => 0,
  );
  const before = process.memoryUsage();
  let peft: PeftAdapters;
  try {
    peft = await importPeft(dir);
  } catch (error) {
    if (error instanceof AlmoraError) return { outcome: 'typedError', detail: error.message.slice(0, 200) };
    return { outcome: 'crash', detail: error instanceof Error ? `${error.name}: ${error.message.slice(0, 200)}` : String(error) };
  }
  const after = process.memoryUsage();
  // Absurd: far more than the file, beyond the noise of a warm heap.
  const grown = Math.max(after.arrayBuffers - before.arrayBuffers, (after.rss - before.rss) / 16);
  if (grown > 64 * size + 4 * 2 ** 20) return { outcome: 'violation', detail: `a ${size}-byte file made memory grow by ${grown} bytes` };
  const file = decodeSafetensors(new Uint8Array(await readFile(path.join(dir, 'adapter_model.safetensors'))));
  const config = JSON.parse(await readFile(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  const wrong = inconsistency(peft, file, config);
  return wrong ? { outcome: 'violation', detail: wrong } : { outcome: 'ok', detail: '' };
}

/** The worker side: reads folder paths from stdin, one a line, and answers each with a {@link Verdict} line. */
export async function serveAdapterChecks(): Promise<void> {
  for await (const line of createInterface({ input: process.stdin })) {
    process.stdout.write(`${JSON.stringify(await checkAdapterFolder(line))}\n`);
  }
}

/** The parent side: one worker process, asked one folder at a time, killed on a hang. */
export class AdapterChecker {
  private readonly child: ChildProcessWithoutNullStreams;
  private answer: ((verdict: Verdict) => void) | undefined;
  private stderr = '';

  /** Starts `script --adapter-worker` (default: fuzz-cli.js of this package's build). */
  constructor(script = fileURLToPath(new URL('../dist/fuzz-cli.js', import.meta.url))) {
    this.child = spawn(process.execPath, [script, '--adapter-worker'], { stdio: ['pipe', 'pipe', 'pipe'] });
    // A write to a worker that just died must end in the 'exit' verdict, not an unhandled EPIPE.
    this.child.stdin.on('error', () => undefined);
    this.child.stderr.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString('utf8')).slice(-2000)));
    createInterface({ input: this.child.stdout }).on('line', (line) => this.answer?.(JSON.parse(line) as Verdict));
    this.child.on('exit', (code, signal) =>
      this.answer?.({ outcome: 'crash', detail: `worker died (${signal ?? `exit ${code}`}): ${this.stderr.trim().split('\n').slice(-3).join(' | ')}` }),
    );
  }

  /** Judges one folder; past `timeoutMs` the worker is killed and the case is a hang. */
  check(dir: string, timeoutMs: number): Promise<Verdict> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.answer = undefined;
        this.child.kill('SIGKILL');
        resolve({ outcome: 'hang', detail: `no answer in ${timeoutMs} ms` });
      }, timeoutMs);
      this.answer = (verdict) => {
        clearTimeout(timer);
        this.answer = undefined;
        resolve(verdict);
      };
      this.child.stdin.write(`${dir}\n`);
    });
  }

  /** Stops the worker. */
  close(): void {
    this.child.stdin.end();
    this.child.kill('SIGKILL');
  }
}
