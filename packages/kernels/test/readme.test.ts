import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runReadmeExample } from '@almora/vitest-config/readme';
import { expect, it } from 'vitest';

it('the README example runs as written', () => {
  const run = runReadmeExample(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'));
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  expect(run.stdout.length).toBeGreaterThan(0);
});

it('the README example of the fused kernels runs as written: the default composition matches the CPU override', () => {
  const run = runReadmeExample(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'), 'README.md', 1);
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  const deviation = Number(/\]\s+(\S+)\s*$/.exec(run.stdout)?.[1]);
  expect(deviation).toBeLessThan(1e-12);
});
