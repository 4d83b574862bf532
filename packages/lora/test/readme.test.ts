import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runReadmeExample } from '@almora/vitest-config/readme';
import { expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

it('the README layer example (PEFT-shaped tensors) runs as written and prints PEFT shapes', () => {
  const run = runReadmeExample(root);
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  // dx is L×d; lora_A is r×in, lora_B out×r.
  expect(run.stdout).toContain('[ 2048, 16 ] [ 2048, 16 ]');
  expect(run.stdout).toContain('[ 4, 16 ] [ 16, 4 ] [ 16, 4 ]');
});

it("the README's paper-notation example runs as written", () => {
  const run = runReadmeExample(root, 'README.md', 1);
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  expect(run.stdout).toMatch(/\[ 2, 4 \] \[ 4, 2 \]/);
});
