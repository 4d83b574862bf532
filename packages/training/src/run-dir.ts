import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AlmoraError } from '@almora/tensor';

/** A symlink sits where the run writes a file or makes a subfolder; the run does not write through it. */
export class RunDirError extends AlmoraError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/** Another run holds the run folder's lock file. */
export class RunLockedError extends AlmoraError {
  /** The lock file. */
  readonly lockFile: string;
  /** The process holding it, when the lock file says. */
  readonly pid: number | undefined;
  constructor(message: string, lockFile: string, pid: number | undefined) {
    super('INVALID_ARGUMENT', message);
    this.lockFile = lockFile;
    this.pid = pid;
  }
}

/** The errno code of a Node system error, if `error` is one. */
export function errorCode(error: unknown): string | undefined {
  return error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
}

function refusal(file: string): RunDirError {
  return new RunDirError(
    `${file} is a symlink; a run does not write through symlinks in its folder. Remove it and run again (what it points to was not touched).`,
  );
}

/** Throws {@link RunDirError} if `file` is a symlink; a missing file is fine. */
export async function refuseSymlink(file: string): Promise<void> {
  const stats = await lstat(file).catch((error: unknown) => {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw error;
  });
  if (stats?.isSymbolicLink()) throw refusal(file);
}

/**
 * Makes (or finds) a subfolder the run creates inside its folder, refusing a symlink there: the
 * parent must exist. Only the folder the user names may be a symlink, which is their choice.
 */
export async function runSubfolder(dir: string): Promise<string> {
  await mkdir(dir).catch((error: unknown) => {
    if (errorCode(error) !== 'EEXIST') throw error;
  });
  await refuseSymlink(dir);
  return dir;
}

// O_EXCL with O_CREAT fails on any existing name, a symlink included, so nothing is followed.
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Creates `file` afresh for writing, never through a symlink. A regular file already there is a
 * temp file left by a killed process (the names carry a pid): it is replaced.
 */
export async function createNew(file: string): Promise<FileHandle> {
  try {
    return await open(file, CREATE_NEW, 0o666);
  } catch (error) {
    if (errorCode(error) !== 'EEXIST') throw error;
  }
  await refuseSymlink(file);
  await unlink(file);
  return open(file, CREATE_NEW, 0o666);
}

/** Opens `file` for appending, refusing a symlink (O_NOFOLLOW fails with ELOOP on one). */
export async function openAppend(file: string): Promise<FileHandle> {
  try {
    return await open(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o666);
  } catch (error) {
    if (errorCode(error) === 'ELOOP') throw refusal(file);
    throw error;
  }
}

/** Who holds a run folder's lock. */
interface LockOwner {
  pid: number;
  hostname: string;
  started: string;
}

/** A lock held on a run folder while a run writes there. */
export interface RunLock {
  /** The lock file. */
  file: string;
  /** Set when a stale lock (its process gone) was taken over: what happened, said plainly. */
  note: string | undefined;
  /** Removes the lock file; call it in a `finally`. */
  release(): Promise<void>;
}

const LOCK_NAME = 'run.lock';

async function readOwner(file: string): Promise<LockOwner | undefined> {
  await refuseSymlink(file);
  try {
    const owner = JSON.parse(await readFile(file, 'utf8')) as Partial<LockOwner> | null;
    const valid =
      owner &&
      typeof owner.pid === 'number' &&
      Number.isInteger(owner.pid) &&
      owner.pid > 0 &&
      typeof owner.hostname === 'string' &&
      typeof owner.started === 'string';
    return valid ? (owner as LockOwner) : undefined;
  } catch (error) {
    // Not written by almora, or gone since the failed create: owner unknown.
    if (error instanceof SyntaxError || errorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return errorCode(error) !== 'ESRCH';
  }
}

function locked(file: string, owner: LockOwner | undefined): RunLockedError {
  const who = owner
    ? `held by pid ${owner.pid} on ${owner.hostname} since ${owner.started}${owner.hostname === os.hostname() ? '' : ' (another host: almora cannot check whether it still runs)'}`
    : 'unreadable (not written by almora)';
  return new RunLockedError(
    `${path.dirname(file)} is in use by another run: ${file} is ${who}. Wait for that run to finish or choose another --run-dir; if no run is using the folder, delete ${file}.`,
    file,
    owner?.pid,
  );
}

/**
 * Moves a stale lock aside and deletes it. If another process took it over first, the file moved
 * is that one's live lock: it is put back and false returned.
 */
async function removeStale(file: string, stale: LockOwner): Promise<boolean> {
  const aside = `${file}.stale-${process.pid}`;
  try {
    await rename(file, aside);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return true;
    throw error;
  }
  const moved = await readOwner(aside);
  const same = moved?.pid === stale.pid && moved.started === stale.started;
  if (!same) await link(aside, file).catch(() => undefined);
  await unlink(aside);
  return same;
}

/**
 * Creates the lock file holding `owner`, or returns false if it exists. Written aside, then
 * hard-linked into place (as exclusive as 'wx'), so a crash never leaves a half-written lock.
 */
async function tryCreate(file: string, owner: LockOwner): Promise<boolean> {
  // Unique within the process too: two trainRun calls in one process race for the same lock.
  const temp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}`;
  const handle = await createNew(temp);
  try {
    await handle.writeFile(`${JSON.stringify(owner)}\n`);
  } finally {
    await handle.close();
  }
  try {
    await link(temp, file);
    return true;
  } catch (error) {
    if (errorCode(error) === 'EEXIST') return false;
    throw error;
  } finally {
    await unlink(temp);
  }
}

/**
 * Locks the run folder `dir` (which must exist) for one run: creates `run.lock` exclusively,
 * holding pid, hostname and start time; release it in a `finally`. A lock held by a live run is a
 * {@link RunLockedError} naming the file and the pid, at once. A stale lock — same host, its
 * process gone — is taken over and {@link RunLock.note} says so.
 */
export async function lockRunDir(dir: string): Promise<RunLock> {
  const file = path.join(dir, LOCK_NAME);
  const me: LockOwner = { pid: process.pid, hostname: os.hostname(), started: new Date().toISOString() };
  const release = () =>
    unlink(file).catch((error: unknown) => {
      if (errorCode(error) !== 'ENOENT') throw error;
    });
  if (await tryCreate(file, me)) return { file, note: undefined, release };
  const owner = await readOwner(file);
  const stale = owner !== undefined && owner.hostname === me.hostname && !isAlive(owner.pid);
  if (!stale || !(await removeStale(file, owner))) throw locked(file, owner);
  if (!(await tryCreate(file, me))) throw locked(file, await readOwner(file));
  return { file, note: `took over the stale lock ${file} of pid ${owner.pid} (started ${owner.started}), which is no longer running`, release };
}

/**
 * Refuses to start a fresh run in a folder that already holds something (a previous run, or
 * anything else), unless the user said `--resume` (continue it) or `--force` (start over, its
 * files replaced as the new run writes them). A missing or empty folder is fine; its own lock file
 * does not count (check after taking the lock, so that a live run is reported as such).
 */
export async function refuseExistingRun(dir: string, resume: boolean, force: boolean): Promise<void> {
  if (resume || force) return;
  const entries = await readdir(dir).catch((error: unknown) => {
    if (errorCode(error) === 'ENOENT') return [];
    throw error;
  });
  const held = entries.filter((name) => name !== LOCK_NAME);
  if (held.length === 0) return;
  const shown = held.slice(0, 4).join(', ') + (held.length > 4 ? `, … (${held.length} entries)` : '');
  throw new RunDirError(
    `${dir} already holds a run (${shown}): pass --resume to continue it, --force to start over in it (its files are replaced), or choose another --run-dir`,
  );
}
