import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runReadmeExample } from '@almora/vitest-config/readme';
import { expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

it("the PEFT page's example runs as written: the paper's x·(W* + (α/r)·B·A) and PEFT's merged layer agree", () => {
  const run = runReadmeExample(root, 'content/peft.md');
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  expect(run.stdout.trim().split('\n')).toEqual(['[ [ 8, -4 ] ]', '[ [ 8, -4 ] ]']);
});
