import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runReadmeExample } from '@almora/vitest-config/readme';
import { expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

it("the getting-started page's Node example runs as written", () => {
  const run = runReadmeExample(root, 'content/index.md');
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  expect(run.stdout).toMatch(/(fast|exact) (fast|exact)( \(|: )/);
});

it("the getting-started page's layer example runs as written, with PEFT's shapes", () => {
  const run = runReadmeExample(root, 'content/index.md', 1);
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  expect(run.stdout).toMatch(/^(exact|fast|mixed) \[ 2048, 16 \] \[ 2048, 16 \] \[ 4, 16 \] \[ 16, 4 \]$/m);
});
