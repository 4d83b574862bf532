import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runReadmeExample } from '@almora/vitest-config/readme';
import { expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

it('the README example runs as written: a loss near ln 256 at initialisation, a report per layer, PEFT shapes', () => {
  const run = runReadmeExample(root);
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  const loss = Number(run.stdout.split(' ')[0]);
  expect(Math.abs(loss - Math.log(256))).toBeLessThan(0.1);
  expect(run.stdout).toMatch(/exact, Γ = [\d.]+ ≤ 2\.00/);
  // down_proj is 64×192 (out×in): lora_A r×in, lora_B out×r.
  expect(run.stdout).toContain('[ 8, 192 ] [ 64, 8 ]');
});

it('the README generation and S²-Attn example runs as written: 9 groups (4 + 5 shifted) of 124 tokens, 16 new tokens', () => {
  const run = runReadmeExample(root, 'README.md', 1);
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  const [first, second] = run.stdout.trim().split('\n');
  expect(Math.abs(Number(first.split(' ')[0]) - Math.log(256))).toBeLessThan(0.1);
  expect(first).toContain(' 9 [ 64, 8 ]');
  expect(second).toBe('16 length');
});
