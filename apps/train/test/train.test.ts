import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { encodeSafetensors } from '@almora/peft';
import { type Matrix, randomNormal, Rng } from '@almora/tensor';
import { configHash, resolveConfig, teacherTask, trainRun, writeReport } from '../src/index.js';
import { CheckpointError, latestCheckpoint, listCheckpoints, loadCheckpoint, TrainingDivergedError } from '@almora/training';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/cli.js');
const small = ['--length', '256', '--dim', '4', '--sequences', '4', '--batch-size', '2', '--method', 'exact', '--compare-exact', 'false', '--quiet'];
/** The hash in the checkpoint names of the CLI run with `small` plus these steps. */
const smallHash = (steps: number, checkpointEvery: number) => {
  const config = resolveConfig({ length: 256, dim: 4, sequences: 4, batchSize: 2, method: 'exact', compareExact: false, steps, checkpointEvery });
  return configHash(config, teacherTask(config));
};

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'almora-train-'));
}

function runCli(args: string[]) {
  return spawnSync(process.execPath, [cli, 'train', '--task', 'teacher', ...args], { encoding: 'utf8' });
}

describe('almora train', () => {
  it('trains on the wasm backend with the losses of the CPU run to rounding', async () => {
    const config = resolveConfig({ length: 256, dim: 4, sequences: 4, batchSize: 2, steps: 4, method: 'exact', compareExact: false });
    const task = teacherTask(config);
    const [cpu, wasm] = await Promise.all(['cpu', 'wasm'].map(async (backend) => trainRun({ ...config, backend }, task, await tempDir())));
    expect(wasm.records.map((r) => r.step)).toEqual(cpu.records.map((r) => r.step));
    for (const [i, r] of wasm.records.entries()) expect(Math.abs(r.loss - cpu.records[i].loss)).toBeLessThan(1e-10 * cpu.records[i].loss);
  });

  it('resumes a run killed mid-way and ends with exactly the adapters of an uninterrupted run', async () => {
    const whole = await tempDir();
    const killed = await tempDir();
    const args = [...small, '--steps', '150', '--checkpoint-every', '5'];
    expect(runCli([...args, '--run-dir', whole]).status).toBe(0);
    const child = spawn(process.execPath, [cli, 'train', '--task', 'teacher', ...args, '--run-dir', killed], { stdio: 'ignore' });
    const checkpoints = path.join(killed, 'exact', 'checkpoints');
    const hash = smallHash(150, 5);
    let killedAt = 0;
    await new Promise<void>((resolve) => {
      const timer = setInterval(async () => {
        const files = await listCheckpoints(checkpoints, hash);
        const newest = files.at(-1);
        if (newest && Number(/step-(\d+)/.exec(newest)![1]) >= 20) {
          child.kill('SIGKILL');
          clearInterval(timer);
        }
      }, 5);
      child.on('exit', (_code, signal) => {
        clearInterval(timer);
        killedAt = signal === 'SIGKILL' ? 1 : 0;
        resolve();
      });
    });
    expect(killedAt).toBe(1);
    const interrupted = await latestCheckpoint(checkpoints, hash);
    expect(interrupted!.state.step).toBeLessThan(150);
    const resumed = runCli([...args, '--run-dir', killed, '--resume']);
    expect(resumed.status).toBe(0);
    expect(resumed.stdout).toMatch(/resumed from step \d+/);
    const a = await latestCheckpoint(path.join(whole, 'exact', 'checkpoints'), hash);
    const b = await latestCheckpoint(checkpoints, hash);
    expect(b!.state.step).toBe(150);
    expect(b!.state.params).toEqual(a!.state.params);
    expect(b!.state.optimizer).toEqual(a!.state.optimizer);
    const metrics = (await readFile(path.join(killed, 'exact', 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; loss: number });
    const reference = (await readFile(path.join(whole, 'exact', 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; loss: number });
    expect(metrics.map((m) => m.step)).toEqual(reference.map((m) => m.step));
    expect(metrics.map((m) => m.loss)).toEqual(reference.map((m) => m.loss));
  }, 120_000);

  it('detects a truncated checkpoint with a clear error and keeps the previous good one', async () => {
    const dir = await tempDir();
    expect(runCli([...small, '--steps', '20', '--checkpoint-every', '10', '--run-dir', dir]).status).toBe(0);
    const checkpoints = path.join(dir, 'exact', 'checkpoints');
    const [older, newest] = await listCheckpoints(checkpoints, smallHash(20, 10));
    const text = await readFile(newest, 'utf8');
    await writeFile(newest, text.slice(0, text.length / 2));
    await expect(loadCheckpoint(newest)).rejects.toThrow(CheckpointError);
    const resumed = runCli([...small, '--steps', '20', '--checkpoint-every', '10', '--run-dir', dir, '--resume']);
    expect(resumed.status).toBe(1);
    expect(resumed.stderr).toMatch(/step-0000020-[0-9a-f]{16}\.ckpt is truncated or corrupt/);
    expect(resumed.stderr).toContain(`previous checkpoint ${older} is intact`);
    expect((await loadCheckpoint(older)).step).toBe(10);
  });

  it('resumes after a torn last line of metrics.jsonl (a full disk mid-append), dropping it and saying so', async () => {
    const dir = await tempDir();
    expect(runCli([...small, '--steps', '20', '--checkpoint-every', '10', '--run-dir', dir]).status).toBe(0);
    const metrics = path.join(dir, 'exact', 'metrics.jsonl');
    const whole = await readFile(metrics, 'utf8');
    await writeFile(metrics, `${whole}{"step": 20, "lo`);
    const resumed = runCli([...small, '--steps', '20', '--checkpoint-every', '10', '--run-dir', dir, '--resume']);
    expect(resumed.status).toBe(0);
    expect(resumed.stdout).toMatch(/dropped the torn last line of .*metrics\.jsonl/);
    // A bad line that is not the last is an alteration, refused with the file and line named.
    await writeFile(metrics, `not json\n${whole}`);
    const altered = runCli([...small, '--steps', '20', '--checkpoint-every', '10', '--run-dir', dir, '--resume']);
    expect(altered.status).toBe(1);
    expect(altered.stderr).toMatch(/line 1 of .*metrics\.jsonl is not JSON/);
  });

  it('stops on divergence saying what diverged, with the last good checkpoint intact', async () => {
    const dir = await tempDir();
    const config = resolveConfig({
      length: 64,
      dim: 4,
      sequences: 2,
      batchSize: 1,
      steps: 30,
      method: 'exact',
      optimizer: 'sgd',
      learningRate: 1e300,
      clipNorm: 0,
      warmupSteps: 0,
      checkpointEvery: 1,
      compareExact: false,
    });
    const task = teacherTask(config);
    let error: unknown;
    try {
      await trainRun(config, task, dir);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TrainingDivergedError);
    expect(String((error as Error).message)).toMatch(/diverged at step \d+: .*non-finite|diverged at step \d+: the (loss|gradient norm) is/);
    const good = await latestCheckpoint(path.join(dir, 'checkpoints'), configHash(config, task));
    expect(existsSync(path.join(dir, 'run.lock'))).toBe(false);
    if (good) expect((error as Error).message).toContain(good.file);
    if (good) expect(Object.values(good.state.params).every((p) => p.data.every(Number.isFinite))).toBe(true);
  });

  it('rejects unknown flags and bad values naming them', () => {
    const unknown = runCli(['--stepz', '3']);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/stepz/);
    const bad = runCli(['--steps', 'ten']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--steps must be an integer > 0, got "ten"/);
    expect(bad.stderr).not.toMatch(/bug/);
    const help = spawnSync(process.execPath, [cli, 'train', '--task', 'teacher', '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: almora train/);
  });

  it('says what it is about to do before any heavy work (#12 item 5)', async () => {
    const dir = await tempDir();
    // L = 200000: building the teacher task alone took 45 s+ in silence before the announce line.
    const child = spawn(process.execPath, [cli, 'train', '--task', 'teacher', '--length', '200000', '--run-dir', dir], { stdio: ['ignore', 'pipe', 'ignore'] });
    // The announce must be the first line: were the task built first, its "building … s" line would come before it.
    const first = await new Promise<string>((resolve) => {
      let out = '';
      const timer = setTimeout(() => resolve(out), 15_000);
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) {
          clearTimeout(timer);
          resolve(out.slice(0, out.indexOf('\n')));
        }
      });
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    expect(first).toMatch(
      /8 sequences × L = 200000 × d = 4 \(X and Y ≈ 102 MB\), 1 head, targets q, v at rank 2; 60 steps of auto \+ exact side by side on the cpu backend; run dir /,
    );
  }, 30_000);

  it('on an unexpected error (a bug) prints its message and a hint, exit code 1, no stack unless ALMORA_DEBUG=1', async () => {
    const dir = await tempDir();
    // A bug stood in for by a fault injected at start-up: os.hostname, which the run lock calls, throws a TypeError.
    const inject = `data:text/javascript,${encodeURIComponent('import os from "node:os"; os.hostname = () => { throw new TypeError("injected fault"); };')}`;
    const run = (debug: string) =>
      spawnSync(process.execPath, ['--import', inject, cli, 'train', '--task', 'teacher', ...small, '--run-dir', dir], {
        encoding: 'utf8',
        env: { ...process.env, ALMORA_DEBUG: debug },
      });
    const plain = run('');
    expect(plain.status).toBe(1);
    expect(plain.stderr).toMatch(/^almora: unexpected error: TypeError: injected fault\n/);
    expect(plain.stderr).toMatch(/probably a bug in almora.*ALMORA_DEBUG=1/s);
    expect(plain.stderr).not.toMatch(/\n\s+at /);
    const debug = run('1');
    expect(debug.status).toBe(1);
    expect(debug.stderr).toMatch(/\n\s+at /);
  });

  it('runs auto and exact side by side to the same quality, and writes report, metrics, plot and PEFT adapters', async () => {
    const dir = await tempDir();
    const run = runCli(['--length', '1024', '--dim', '4', '--sequences', '4', '--batch-size', '1', '--steps', '30', '--quiet', '--run-dir', dir]);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/auto: loss .* 30\/30 steps fast/);
    const report = await readFile(path.join(dir, 'report.md'), 'utf8');
    expect(report).toMatch(/\| auto \| .* \| 30 fast, 0 exact \|/);
    expect(report).toMatch(/\| exact \(side by side\) \| .* \| 0 fast, 30 exact \|/);
    const difference = Number(/differ by at most (\d+\.\d+)/.exec(report)![1]);
    expect(difference).toBeLessThan(0.01);
    for (const file of [
      'loss.svg',
      'auto/metrics.jsonl',
      'auto/adapters/adapter_config.json',
      'auto/adapters/adapter_model.safetensors',
      'auto/base/config.json',
      'auto/base/model.safetensors',
      'exact/metrics.jsonl',
    ]) {
      await expect(readFile(path.join(dir, file))).resolves.toBeTruthy();
    }
  }, 120_000);

  it('norm control keeps Γ of the adapted Q and K under the bound and says so in the report', async () => {
    const base = resolveConfig({
      length: 256,
      dim: 4,
      sequences: 2,
      batchSize: 1,
      steps: 15,
      method: 'auto',
      normalizeInputs: 0,
      inputScale: 0.4,
      compareExact: false,
      checkpointEvery: 0,
    });
    const task = teacherTask(base);
    const free = await trainRun(base, task, await tempDir());
    const gammas = free.records.map((r) => r.gammaAfter);
    // A bound between Γ at the start (frozen parts only, A = 0) and the largest Γ training reaches.
    const bound = (gammas[0] + Math.max(...gammas)) / 2;
    expect(Math.max(...gammas)).toBeGreaterThan(bound);
    const config = { ...base, gammaBound: bound };
    const dir = await tempDir();
    const result = await trainRun(config, task, dir);
    expect(result.records.some((r) => r.rescaled)).toBe(true);
    for (const r of result.records) expect(r.gammaAfter).toBeLessThanOrEqual(bound * (1 + 1e-12));
    const file = await writeReport(dir, config, result, undefined);
    expect(await readFile(file, 'utf8')).toMatch(/by rescaling B after a step: it fired on \d+ of 15 steps/);
  });

  it('trains on a dataset file, and names the sequence whose shapes disagree', async () => {
    const dir = await tempDir();
    const rng = new Rng(3);
    const tensor = (m: Matrix) => ({ dtype: 'F64' as const, shape: [m.rows, m.cols], data: Float64Array.from(m.toFlat()) });
    const tensors: Record<string, ReturnType<typeof tensor>> = {
      w_q: tensor(randomNormal(4, 4, rng)),
      w_k: tensor(randomNormal(4, 4, rng)),
      w_v: tensor(randomNormal(4, 4, rng)),
      'x.0': tensor(randomNormal(64, 4, rng, { std: 0.2 })),
      'y.0': tensor(randomNormal(64, 4, rng)),
      'x.1': tensor(randomNormal(48, 4, rng, { std: 0.2 })),
      'y.1': tensor(randomNormal(48, 4, rng)),
    };
    const good = path.join(dir, 'data.safetensors');
    await writeFile(good, encodeSafetensors({ tensors, metadata: {} }));
    const run = runCli([
      '--data',
      good,
      '--dim',
      '4',
      '--batch-size',
      '1',
      '--steps',
      '3',
      '--method',
      'exact',
      '--compare-exact',
      'false',
      '--quiet',
      '--run-dir',
      path.join(dir, 'run'),
    ]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(await readFile(path.join(dir, 'run', 'report.md'), 'utf8')).toMatch(/Task: a user dataset/);
    const bad = path.join(dir, 'bad.safetensors');
    await writeFile(bad, encodeSafetensors({ tensors: { ...tensors, 'y.1': tensor(randomNormal(47, 4, rng)) }, metadata: {} }));
    const refused = runCli(['--data', bad, '--dim', '4', '--batch-size', '1', '--steps', '3', '--quiet', '--run-dir', path.join(dir, 'bad')]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/sequence 1: X is 48×4 but Y is 47×4; Y must be 48×4/);
    // Resuming on other data with the same config is refused, not continued silently (#12).
    const other = path.join(dir, 'other.safetensors');
    await writeFile(other, encodeSafetensors({ tensors: { ...tensors, 'y.0': tensor(randomNormal(64, 4, rng)) }, metadata: {} }));
    const moved = runCli([
      '--data',
      other,
      '--dim',
      '4',
      '--batch-size',
      '1',
      '--steps',
      '5',
      '--method',
      'exact',
      '--compare-exact',
      'false',
      '--quiet',
      '--run-dir',
      path.join(dir, 'run'),
      '--resume',
    ]);
    expect(moved.status).toBe(1);
    expect(moved.stderr).toMatch(/no checkpoint of this config/);
  });
});
