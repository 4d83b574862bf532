import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runReadmeExample } from '@almora/vitest-config/readme';
import { expect, it } from 'vitest';

it('the README example runs as written: a BF16 adapter written, read back and merged by hand-checked numbers', () => {
  const run = runReadmeExample(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'));
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  expect(run.stdout.trim()).toBe('BF16 [ [ 3, 4 ], [ 6, 13 ] ]');
});
