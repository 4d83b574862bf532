import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runReadmeExample } from '@almora/vitest-config/readme';
import { expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

it('the README example runs as written: two steps of the shipped base on fiction, a report for every head', () => {
  const run = runReadmeExample(root);
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  const [before, after, heads, paths] = run.stdout.trim().split(' ');
  // The shipped base scores fiction at about 2.6 bits per character; two small steps move it little.
  expect(Number(before)).toBeGreaterThan(2);
  expect(Number(before)).toBeLessThan(3.5);
  expect(Math.abs(Number(after) - Number(before))).toBeLessThan(0.2);
  expect(Number(heads)).toBe(2 * 2 * 4);
  expect(paths.split(',').every((p) => p === 'exact' || p === 'fast')).toBe(true);
}, 120_000);
