import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { link, mkdir, mkdtemp, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { configHash, resolveConfig, teacherTask, trainRun, writeReport, type TrainConfig } from '../src/index.js';
import { CheckpointError, latestCheckpoint, listCheckpoints, loadCheckpoint, RunDirError, RunLockedError, writeFileAtomic } from '@almora/training';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/cli.js');
const small = ['--length', '256', '--dim', '4', '--sequences', '4', '--batch-size', '2', '--method', 'exact', '--compare-exact', 'false', '--quiet'];
/** The config the CLI resolves from `small` plus `extra`, for the hash in checkpoint names. */
const smallConfig = (extra: Partial<TrainConfig>) =>
  resolveConfig({ length: 256, dim: 4, sequences: 4, batchSize: 2, method: 'exact', compareExact: false, ...extra });
/** The hash in a run's checkpoint names: its config and its (teacher) task's data. */
const hashOf = (config: TrainConfig) => configHash(config, teacherTask(config));

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'almora-run-dir-'));
}

function runCli(args: string[]) {
  return spawnSync(process.execPath, [cli, 'train', '--task', 'teacher', ...args], { encoding: 'utf8' });
}

/** Starts the CLI; resolves when it exits, with its pid, output and the time it took. */
function startCli(args: string[]): { pid: number; done: Promise<{ status: number | null; stderr: string; ms: number }> } {
  const began = performance.now();
  const child = spawn(process.execPath, [cli, 'train', '--task', 'teacher', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return { pid: child.pid!, done: new Promise((resolve) => child.on('exit', (status) => resolve({ status, stderr, ms: performance.now() - began }))) };
}

const steps = async (file: string) =>
  (await readFile(file, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { step: number }).step);

describe('checkpoints per config (#12 item 1)', () => {
  it("a rerun with a changed config keeps its own checkpoints and the old run's, and resumes from its own; a resume with more steps extends", async () => {
    const dir = await tempDir();
    const checkpoints = path.join(dir, 'exact', 'checkpoints');
    expect(runCli([...small, '--steps', '60', '--checkpoint-every', '10', '--run-dir', dir]).status).toBe(0);
    const oldHash = hashOf(smallConfig({ steps: 60, checkpointEvery: 10 }));
    const oldFiles = await readdir(checkpoints);
    // Into a folder that holds a run, a fresh start takes --force.
    expect(runCli([...small, '--steps', '30', '--learning-rate', '0.05', '--checkpoint-every', '10', '--run-dir', dir]).status).toBe(1);
    expect(runCli([...small, '--steps', '30', '--learning-rate', '0.05', '--checkpoint-every', '10', '--run-dir', dir, '--force']).status).toBe(0);
    const newHash = hashOf(smallConfig({ steps: 30, learningRate: 0.05, checkpointEvery: 10 }));
    // The data loss once: the old run's step-50/60 outranked the new run's files, which were pruned as written.
    const newest = await latestCheckpoint(checkpoints, newHash);
    expect(newest?.state.step).toBe(30);
    expect(newest?.state.configHash).toBe(newHash);
    expect((await listCheckpoints(checkpoints, newHash)).map((f) => path.basename(f))).toEqual([
      `step-0000020-${newHash}.ckpt`,
      `step-0000030-${newHash}.ckpt`,
    ]);
    for (const name of oldFiles) expect((await loadCheckpoint(path.join(checkpoints, name))).configHash).toBe(oldHash);
    expect((await listCheckpoints(checkpoints, oldHash)).map((f) => path.basename(f))).toEqual(oldFiles);
    const resumed = runCli([...small, '--steps', '30', '--learning-rate', '0.05', '--checkpoint-every', '10', '--run-dir', dir, '--resume']);
    expect(resumed.stderr).toBe('');
    expect(resumed.stdout).toMatch(/resumed from step 30/);
    // The first config again, with more steps: the step count is not part of the hash, so it extends from its step 60.
    const extended = runCli([...small, '--steps', '70', '--checkpoint-every', '10', '--run-dir', dir, '--resume']);
    expect(extended.stderr).toBe('');
    expect(extended.stdout).toMatch(/resumed from step 60/);
    expect((await latestCheckpoint(checkpoints, oldHash))?.state.step).toBe(70);
    // A third config finds only other configs' checkpoints: a typed error saying so, nothing touched.
    const other = smallConfig({ steps: 40, checkpointEvery: 10, seed: 7 });
    const before = (await readdir(checkpoints)).length;
    const error = await trainRun(other, teacherTask(other), path.join(dir, 'exact'), { resume: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckpointError);
    expect((error as Error).message).toMatch(new RegExp(`no checkpoint of this config \\(hash ${hashOf(other)}\\).*${oldHash}.*without --resume`));
    expect((await readdir(checkpoints)).length).toBe(before);
  }, 90_000);
});

describe('one run per folder (#12 item 2)', () => {
  it('a second trainRun into the same folder fails at once with the lock error; the first completes', async () => {
    const dir = await tempDir();
    const config = smallConfig({ steps: 80, checkpointEvery: 10 });
    const task = teacherTask(config);
    const began = performance.now();
    let failedAfter = Number.NaN;
    let finishedAfter = Number.NaN;
    const attempt = () =>
      trainRun(config, task, dir).then(
        (r) => ((finishedAfter = performance.now() - began), r),
        (e: unknown) => {
          failedAfter = performance.now() - began;
          throw e;
        },
      );
    const outcomes = await Promise.allSettled([attempt(), attempt()]);
    const failed = outcomes.filter((o) => o.status === 'rejected');
    expect(failed).toHaveLength(1);
    const error = (failed[0] as PromiseRejectedResult).reason as RunLockedError;
    expect(error).toBeInstanceOf(RunLockedError);
    expect(error.message).toContain(path.join(dir, 'run.lock'));
    expect(error.message).toContain(`pid ${process.pid}`);
    expect(failedAfter).toBeLessThan(finishedAfter);
    expect(await steps(path.join(dir, 'metrics.jsonl'))).toEqual(Array.from({ length: 80 }, (_, i) => i));
    expect((await latestCheckpoint(path.join(dir, 'checkpoints'), hashOf(config)))?.state.step).toBe(80);
    expect(existsSync(path.join(dir, 'run.lock'))).toBe(false);
  });

  it('two CLI runs into one folder: exactly one fails fast naming the lock and the pid holding it', async () => {
    const dir = await tempDir();
    const args = [...small, '--steps', '80', '--checkpoint-every', '10', '--run-dir', dir];
    const a = startCli(args);
    const b = startCli(args);
    const [ra, rb] = await Promise.all([a.done, b.done]);
    expect([ra.status, rb.status].sort()).toEqual([0, 1]);
    const [winner, loser] = ra.status === 0 ? [a, rb] : [b, ra];
    expect(loser.stderr).toMatch(new RegExp(`${path.join(dir, 'run.lock').replace(/[.]/g, '\\.')}.*pid ${winner.pid}`));
    expect(loser.ms).toBeLessThan((ra.status === 0 ? ra : rb).ms);
    expect(await steps(path.join(dir, 'exact', 'metrics.jsonl'))).toEqual(Array.from({ length: 80 }, (_, i) => i));
    const hash = hashOf(smallConfig({ steps: 80, checkpointEvery: 10 }));
    expect((await listCheckpoints(path.join(dir, 'exact', 'checkpoints'), hash)).map((f) => path.basename(f))).toEqual([
      `step-0000070-${hash}.ckpt`,
      `step-0000080-${hash}.ckpt`,
    ]);
    expect(existsSync(path.join(dir, 'run.lock'))).toBe(false);
  }, 60_000);

  it('takes over a stale lock (its process is gone) and says so; respects a lock from another host', async () => {
    const dir = await tempDir();
    const config = smallConfig({ steps: 5, checkpointEvery: 0 });
    const task = teacherTask(config);
    const gone = spawnSync(process.execPath, ['-e', '0']).pid;
    const lockFile = path.join(dir, 'run.lock');
    await writeFile(lockFile, JSON.stringify({ pid: gone, hostname: os.hostname(), started: '2020-01-01T00:00:00.000Z' }));
    const result = await trainRun(config, task, dir);
    expect(result.notes.join('\n')).toMatch(new RegExp(`took over the stale lock ${lockFile.replace(/[.]/g, '\\.')}.*pid ${gone}`));
    expect(existsSync(lockFile)).toBe(false);
    await writeFile(lockFile, JSON.stringify({ pid: process.pid, hostname: 'elsewhere.example', started: '2020-01-01T00:00:00.000Z' }));
    await expect(trainRun(config, task, dir)).rejects.toThrow(/pid \d+ on elsewhere\.example/);
    expect(existsSync(lockFile)).toBe(true);
  });
});

describe('no writes through planted symlinks (#12 item 3)', () => {
  const config = smallConfig({ steps: 10, checkpointEvery: 5 });
  const task = teacherTask(config);

  async function victim(): Promise<string> {
    const file = path.join(await tempDir(), 'victim.txt');
    await writeFile(file, 'precious\n');
    return file;
  }

  it('refuses a symlink at metrics.jsonl, at a checkpoint, at checkpoints/, adapters/ and the lock, naming it', async () => {
    const target = await victim();
    for (const plant of ['metrics.jsonl', `checkpoints/step-0000005-${hashOf(config)}.ckpt`, 'run.lock']) {
      const dir = await tempDir();
      await mkdir(path.dirname(path.join(dir, plant)), { recursive: true });
      await symlink(target, path.join(dir, plant));
      const error = await trainRun(config, task, dir).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RunDirError);
      expect((error as Error).message).toContain(path.join(dir, plant));
      expect(await readFile(target, 'utf8')).toBe('precious\n');
    }
    for (const folder of ['checkpoints', 'adapters']) {
      const outside = await tempDir();
      const dir = await tempDir();
      await symlink(outside, path.join(dir, folder));
      const error = await trainRun(config, task, dir).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RunDirError);
      expect((error as Error).message).toContain(path.join(dir, folder));
      expect(await readdir(outside)).toEqual([]);
    }
  });

  it('the CLI refuses a symlinked exact/ or report.md; the run folder itself may be a symlink', async () => {
    const target = await victim();
    const outside = await tempDir();
    const a = await tempDir();
    await symlink(outside, path.join(a, 'exact'));
    // --force: the folder holds something, and this is about what the run then refuses to write through.
    const refused = runCli([...small, '--steps', '3', '--run-dir', a, '--force']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(path.join(a, 'exact'));
    expect(await readdir(outside)).toEqual([]);
    const b = await tempDir();
    await symlink(target, path.join(b, 'report.md'));
    const report = runCli([...small, '--steps', '3', '--run-dir', b, '--force']);
    expect(report.status).toBe(1);
    expect(report.stderr).toContain(path.join(b, 'report.md'));
    expect(await readFile(target, 'utf8')).toBe('precious\n');
    const real = await tempDir();
    const named = path.join(await tempDir(), 'link');
    await symlink(real, named);
    expect(runCli([...small, '--steps', '3', '--run-dir', named]).status).toBe(0);
    expect(existsSync(path.join(real, 'report.md'))).toBe(true);
  }, 60_000);
});

describe('atomic replacement (#12 item 4)', () => {
  it('replaces metrics.jsonl, report.md and loss.svg by renaming a new file over them, never in place', async () => {
    const dir = await tempDir();
    const args = [...small, '--steps', '10', '--checkpoint-every', '5', '--run-dir', dir];
    expect(runCli(args).status).toBe(0);
    const files = ['exact/metrics.jsonl', 'report.md', 'loss.svg'].map((f) => path.join(dir, f));
    // A hard link keeps the old inode: rewritten in place, its content would change under a reader.
    const before = await Promise.all(files.map(async (f) => (await stat(f)).ino));
    const kept = path.join(dir, 'kept-report.md');
    await link(files[1], kept);
    const old = await readFile(kept, 'utf8');
    expect(runCli([...args, '--resume']).status).toBe(0);
    const after = await Promise.all(files.map(async (f) => (await stat(f)).ino));
    after.forEach((ino, i) => expect(ino, files[i]).not.toBe(before[i]));
    expect(await readFile(kept, 'utf8')).toBe(old);
  }, 60_000);

  it("the atomic writer's temp file does not follow a symlink either", async () => {
    const target = path.join(await tempDir(), 'victim.txt');
    await writeFile(target, 'precious\n');
    const dir = await tempDir();
    const file = path.join(dir, 'report.md');
    await symlink(target, `${file}.tmp-${process.pid}`);
    await expect(writeFileAtomic(file, 'new')).rejects.toThrow(RunDirError);
    const config = smallConfig({ steps: 2 });
    const result = await trainRun(config, teacherTask(config), await tempDir());
    await expect(writeReport(dir, config, result, undefined)).rejects.toThrow(RunDirError);
    expect(await readFile(target, 'utf8')).toBe('precious\n');
  });
});
