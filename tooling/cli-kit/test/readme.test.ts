import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runReadmeExample } from '@almora/vitest-config/readme';
import { expect, it } from 'vitest';

it('the README example runs as written', () => {
  const run = runReadmeExample(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'));
  // Not a terminal: the progress comes as plain lines, the first and the last.
  expect(run.stderr).toMatch(/^squares: 0\/5 \(0%\), 0s elapsed\nsquares: 5\/5 \(100%\), \d+s elapsed, 0s left · x=5\n$/);
  expect(run.status).toBe(0);
  expect(run.stdout.length).toBeGreaterThan(0);
});
