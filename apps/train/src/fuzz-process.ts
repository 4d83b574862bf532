import { spawn } from 'node:child_process';

/** How a child process ended. */
export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Killed by us: past the time limit. */
  timedOut: boolean;
  ms: number;
}

/** Options of {@link runNode}. */
export interface RunNodeOptions {
  cwd: string;
  /** SIGKILL after this long and report `timedOut`. */
  timeoutMs: number;
  /** SIGKILL after this long as part of the test (not a time-out). */
  killAfterMs?: number;
}

// Output past this is dropped: a runaway child must not fill the fuzzer's memory.
const MAX_OUTPUT = 1 << 20;

/** Runs `node args…` and collects its output; it cannot outlive `timeoutMs`. */
export function runNode(args: string[], options: RunNodeOptions): Promise<ProcessResult> {
  const began = performance.now();
  const child = spawn(process.execPath, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    if (stdout.length < MAX_OUTPUT) stdout += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < MAX_OUTPUT) stderr += chunk.toString('utf8');
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs);
  const killer = options.killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.killAfterMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr, timedOut, ms: performance.now() - began });
    });
  });
}

/** Runs `work(i)` for i in [0, count) with at most `limit` at once; results in index order. */
export async function inParallel<T>(count: number, limit: number, work: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await work(i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, count)) }, lane));
  return results;
}
