#!/usr/bin/env node
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type FuzzCounts, fuzzAdapters, fuzzCli, fuzzKillResume, hasFailures } from './fuzz.js';
import { serveAdapterChecks } from './fuzz-worker.js';

const usage = `usage: node fuzz-cli.js [--adapters N] [--cli N] [--kill-resume N] [--seed S] [--json]
Runs the fuzz suite of almora train (importPeft, the CLI, kill-and-resume) and prints its counts;
exits 1 if any violation, crash, hang or lost data was found.`;

const COLUMNS = ['cases', 'ok', 'typedErrors', 'violations', 'crashes', 'hangs', 'dataLost'] as const;

function count(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${flag} must be an integer ≥ 0, got ${JSON.stringify(text)}`);
  return n;
}

async function timed(work: () => Promise<FuzzCounts>): Promise<FuzzCounts & { seconds: number }> {
  const began = performance.now();
  const counts = await work();
  return { ...counts, seconds: Math.round((performance.now() - began) / 100) / 10 };
}

function table(suites: Record<string, FuzzCounts & { seconds: number }>): string {
  const rows = Object.entries(suites).map(([name, c]) => [name, ...COLUMNS.map((k) => String(c[k])), c.seconds.toFixed(1)]);
  const lines = [['suite', ...COLUMNS, 'seconds'], ...rows].map((row) => row.map((cell, i) => (i === 0 ? cell.padEnd(12) : cell.padStart(13))).join(''));
  const examples = Object.entries(suites).flatMap(([name, c]) => c.examples.map((e) => `  ${name}: ${e}`));
  return [...lines, ...(examples.length > 0 ? ['', 'examples:', ...examples] : [])].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      adapters: { type: 'string' },
      cli: { type: 'string' },
      'kill-resume': { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean' },
      // The worker that fuzzAdapters loads each case in, so a hang cannot take the suite down.
      'adapter-worker': { type: 'boolean' },
    },
  });
  if (values['adapter-worker']) return serveAdapterChecks();
  if (values.help) return console.log(usage);
  const seed = count(values.seed, 1, 'seed');
  const cliPath = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cli.js');
  const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fuzz-cli.js');
  const began = performance.now();
  const suites = {
    adapters: await timed(() => fuzzAdapters({ cases: count(values.adapters, 3000, 'adapters'), seed, worker })),
    cli: await timed(() => fuzzCli({ cases: count(values.cli, 300, 'cli'), seed, cliPath })),
    killResume: await timed(() => fuzzKillResume({ loops: count(values['kill-resume'], 16, 'kill-resume'), seed, cliPath })),
  };
  const seconds = Math.round((performance.now() - began) / 100) / 10;
  const failed = Object.values(suites).some(hasFailures);
  console.log(
    values.json
      ? JSON.stringify({ seed, seconds, passed: !failed, ...suites })
      : `${table(suites)}\n\nseed ${seed}, ${seconds} s: ${failed ? 'FAILED' : 'passed'}`,
  );
  if (failed) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(`fuzz: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 2;
});
