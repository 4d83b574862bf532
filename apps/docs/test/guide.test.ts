import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runReadmeExample } from '@almora/vitest-config/readme';
import { expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

it("the guide's two-layer model trains its adapters as written: the loss falls and each layer reports its path", () => {
  const run = runReadmeExample(root, 'content/guide.md');
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  const lines = [...run.stdout.matchAll(/^step (\d+): loss ([\d.]+), paths (exact|fast|mixed) (exact|fast|mixed)$/gm)];
  expect(lines.map((m) => Number(m[1]))).toEqual([0, 20, 40]);
  const losses = lines.map((m) => Number(m[2]));
  expect(losses[1]).toBeLessThan(losses[0]);
  expect(losses[2]).toBeLessThan(0.5 * losses[0]);
});
