import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type FuzzCounts, fuzzAdapters, fuzzCli, fuzzKillResume } from '../src/fuzz.js';

// The suite runs the built CLI and the built worker, as the bench's longer run does. Each CLI case
// waits mostly on process start-up, so three at once fit even a 2-core machine.
const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist');
const cliPath = path.join(dist, 'cli.js');
const worker = path.join(dist, 'fuzz-cli.js');

function expectClean(counts: FuzzCounts): void {
  console.log(JSON.stringify(counts));
  expect(counts.examples).toEqual([]);
  expect({ violations: counts.violations, crashes: counts.crashes, hangs: counts.hangs, dataLost: counts.dataLost }).toEqual({
    violations: 0,
    crashes: 0,
    hangs: 0,
    dataLost: 0,
  });
}

describe('fuzz suite (#12), quick size', () => {
  it('importPeft meets hostile adapter folders with typed errors or exact loads, never a crash or hang', async () => {
    const counts = await fuzzAdapters({ cases: 250, seed: 12, worker });
    expectClean(counts);
    expect(counts.cases).toBe(250);
    expect(counts.typedErrors).toBeGreaterThan(0);
    expect(counts.ok).toBeGreaterThan(0);
  });

  it('almora train meets hostile flags, configs, data and run folders with one-line typed errors', async () => {
    const counts = await fuzzCli({ cases: 12, seed: 12, cliPath, concurrency: 3 });
    expectClean(counts);
    expect(counts.cases).toBe(12);
    expect(counts.typedErrors).toBeGreaterThan(0);
  });

  it('a run killed with SIGKILL and resumed ends byte for byte like an uninterrupted one', async () => {
    // Seed 1's reference run once stopped at its divergence check before any kill (the bench's hostile suite runs seed 1).
    const counts = await fuzzKillResume({ loops: 1, seed: 1, cliPath });
    expectClean(counts);
    expect(counts.ok).toBe(1);
  });
});
