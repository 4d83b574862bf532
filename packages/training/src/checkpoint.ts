import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { AlmoraError } from '@almora/tensor';
import type { OptimizerState } from './optim.js';
import { createNew, errorCode, refuseSymlink } from './run-dir.js';

/** Everything needed to continue a run bit for bit. */
export interface CheckpointState {
  /** Steps completed. */
  step: number;
  /** `configHash()` of the run's config (16 hex digits, part of the file name); a resume with another config is refused. */
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

/** `step-0000010-<configHash>.ckpt`: the hash keeps runs of different configs in one folder apart. */
function fileName(step: number, configHash: string): string {
  return `step-${String(step).padStart(7, '0')}-${configHash}.ckpt`;
}

/** Checkpoint files in `dir` by step, oldest first; `hash` is undefined for the unnamed files of older almora. */
async function allCheckpoints(dir: string): Promise<{ file: string; step: number; hash: string | undefined }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  return names
    .map((name) => ({ name, match: /^step-(\d{7,})(?:-([0-9a-f]{16}))?\.ckpt$/.exec(name) }))
    .filter(({ match }) => match !== null)
    .map(({ name, match }) => ({ file: path.join(dir, name), step: Number(match![1]), hash: match![2] }))
    .sort((a, b) => a.step - b.step);
}

/**
 * Writes `data` to `file` atomically: a fresh temp file, fsync, rename, fsync of the folder. A
 * symlink at `file` or at the temp name is refused with {@link RunDirError}, its target untouched.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await refuseSymlink(file);
  const temp = `${file}.tmp-${process.pid}`;
  const handle = await createNew(temp);
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  const dir = await open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/**
 * Saves a checkpoint as two lines — the SHA-256 of the body, then the body as JSON (which keeps
 * every float64 exactly) — atomically, named by step and config hash, and keeps only the newest two
 * of that config: a crash at any moment leaves the previous good checkpoint in place, and another
 * config's checkpoints in the same folder are never touched. `state.configHash` must be 16 hex digits.
 */
export async function saveCheckpoint(dir: string, state: CheckpointState): Promise<string> {
  // The hash becomes part of a file name: anything but configHash()'s 16 hex digits could leave `dir`.
  if (!/^[0-9a-f]{16}$/.test(state.configHash))
    throw new CheckpointError(`configHash must be 16 hex digits (as configHash() makes), got ${JSON.stringify(state.configHash)}`);
  await mkdir(dir, { recursive: true });
  const body = JSON.stringify({ format: 'almora-checkpoint', version: 1, ...state });
  const hash = createHash('sha256').update(body).digest('hex');
  const file = path.join(dir, fileName(state.step, state.configHash));
  await writeFileAtomic(file, `${hash}\n${body}\n`);
  for (const old of (await listCheckpoints(dir, state.configHash)).slice(0, -KEEP)) {
    await unlink(old).catch((error: unknown) => {
      if (errorCode(error) !== 'ENOENT') throw error;
    });
  }
  return file;
}

/** The checkpoint files of the config with hash `configHash` in `dir`, oldest first (temp files are ignored). */
export async function listCheckpoints(dir: string, configHash: string): Promise<string[]> {
  return (await allCheckpoints(dir)).filter((c) => c.hash === configHash).map((c) => c.file);
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
 * The newest checkpoint of the config with hash `configHash` in `dir`, verified, or undefined if
 * `dir` has no checkpoint at all. If it has only other configs' checkpoints, that is a
 * {@link CheckpointError} saying so. If the newest is corrupt, the error says so and names the
 * previous good one, which is left untouched.
 */
export async function latestCheckpoint(dir: string, configHash: string): Promise<{ file: string; state: CheckpointState } | undefined> {
  const files = await listCheckpoints(dir, configHash);
  if (files.length === 0) {
    const others = [...new Set((await allCheckpoints(dir)).map((c) => c.hash ?? 'unnamed, from an older almora'))];
    if (others.length === 0) return undefined;
    throw new CheckpointError(
      `cannot resume: ${dir} has no checkpoint of this config (hash ${configHash}), only of other configs (${others.join(', ')}). Resume with the config they were written with, or run without --resume to start this one afresh (their files are kept).`,
    );
  }
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
