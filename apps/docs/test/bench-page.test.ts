import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { readerFirst } from '../scripts/bench-page.mjs';

const results = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');

it('a benchmark page leads with what was measured and the plots; the targets follow the findings; nothing is lost', () => {
  const source = readFileSync(path.join(results, 'phase.md'), 'utf8');
  const page = readerFirst(source);
  const order = ['# Phase transition', '![error](phase-error.svg)', '## Findings', '## Targets checked', '## Notes', '## Results'].map((marker) =>
    page.indexOf(marker),
  );
  expect(order.every((at) => at >= 0)).toBe(true);
  expect([...order].sort((a, b) => a - b)).toEqual(order);
  expect(page).not.toContain('- Goal: ');
  // Every non-empty line of the source survives (goal bullets without their prefix).
  for (const line of source.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('## Findings'))) expect(page).toContain(line.replace('- Goal: ', '- '));
});
