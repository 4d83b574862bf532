import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { AlmoraError } from '@almora/tensor';
import type { OptimizerState } from './optim.js';

/** Everything needed to continue a run bit for bit. */
export interface CheckpointState {
  /** Steps completed. */
  step: number;
  /** Hash of the config the run was started with; a resume with another config is refused. */
  configHash: string;
  /** State of the data-order RNG. */
  rngState: number;
  /** Adapter matrices, row-major, by name ("q.a", "q.b", …). */
  params: Record<string, { rows: number; cols: number; data: number[] }>;
  optimizer: OptimizerState;
}

/** A checkpoint file that is truncated, corrupt, or from another run. */
export class CheckpointError extends AlmoraError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

const KEEP = 2;

function fileName(step: number): string {
  return `step-${String(step).padStart(7, '0')}.ckpt`;
}

/** Writes `data` to `file` atomically: temp file, fsync, rename, fsync of the folder. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const temp = `${file}.tmp-${process.pid}`;
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
  const dir = await open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/**
 * Saves a checkpoint as two lines — the SHA-256 of the body, then the body as JSON (which keeps
 * every float64 exactly) — atomically, and keeps only the newest two, so a crash at any moment
 * leaves the previous good checkpoint in place.
 */
export async function saveCheckpoint(dir: string, state: CheckpointState): Promise<string> {
  await mkdir(dir, { recursive: true });
  const body = JSON.stringify({ format: 'almora-checkpoint', version: 1, ...state });
  const hash = createHash('sha256').update(body).digest('hex');
  const file = path.join(dir, fileName(state.step));
  await writeFileAtomic(file, `${hash}\n${body}\n`);
  const all = (await listCheckpoints(dir)).slice(0, -KEEP);
  for (const old of all) await unlink(old);
  return file;
}

/** Checkpoint files in `dir`, oldest first (stray temp files are ignored). */
export async function listCheckpoints(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => /^step-\d{7}\.ckpt$/.test(n))
    .sort()
    .map((n) => path.join(dir, n));
}

/** Reads and verifies one checkpoint; a truncated or altered file is a {@link CheckpointError}. */
export async function loadCheckpoint(file: string): Promise<CheckpointState> {
  const text = await readFile(file, 'utf8');
  const newline = text.indexOf('\n');
  const hash = text.slice(0, newline);
  const body = text.slice(newline + 1).replace(/\n$/, '');
  if (newline !== 64 || createHash('sha256').update(body).digest('hex') !== hash) {
    throw new CheckpointError(`checkpoint ${file} is truncated or corrupt (its SHA-256 does not match)`);
  }
  const parsed = JSON.parse(body) as CheckpointState & { format?: string; version?: number };
  if (parsed.format !== 'almora-checkpoint' || parsed.version !== 1) throw new CheckpointError(`${file} is not an almora checkpoint (version 1)`);
  return parsed;
}

/**
 * The newest checkpoint in `dir`, verified, or undefined if there is none. If the newest is
 * corrupt, the error says so and names the previous good one, which is left untouched.
 */
export async function latestCheckpoint(dir: string): Promise<{ file: string; state: CheckpointState } | undefined> {
  const files = await listCheckpoints(dir);
  if (files.length === 0) return undefined;
  const newest = files[files.length - 1];
  try {
    return { file: newest, state: await loadCheckpoint(newest) };
  } catch (error) {
    if (!(error instanceof CheckpointError) || files.length < 2) throw error;
    const previous = files[files.length - 2];
    await loadCheckpoint(previous);
    throw new CheckpointError(`${error.message}. The previous checkpoint ${previous} is intact: delete ${newest} and resume again to continue from it.`);
  }
}
