import { describe, expect, it } from 'vitest';
import { crossoverLength, logLogSlope, median, timeInterleaved, toCsv, toMarkdownTable, type Row } from '../src/index.js';

describe('harness pieces', () => {
  it('median and log-log slope are right on known data', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => median([])).toThrow();
    const quadratic = [256, 512, 1024, 2048].map((x) => [x, 3e-9 * x * x] as [number, number]);
    expect(logLogSlope(quadratic)).toBeCloseTo(2, 10);
  });

  it('a crossover needs the method to stay faster at every larger length', () => {
    expect(
      crossoverLength([
        [128, 1.1],
        [256, 0.5],
      ]),
    ).toBeUndefined();
    expect(
      crossoverLength([
        [128, 1.1],
        [256, 0.5],
        [512, 2],
        [1024, 3],
      ]),
    ).toBe(512);
    expect(
      crossoverLength([
        [128, 1.1],
        [256, 1.5],
      ]),
    ).toBe(128);
    expect(crossoverLength([])).toBeUndefined();
  });

  it('interleaves methods and counts every repeat', () => {
    const order: string[] = [];
    const times = timeInterleaved(
      [
        { name: 'a', run: () => order.push('a') },
        { name: 'b', run: () => order.push('b') },
      ],
      3,
    );
    expect(order).toEqual(['a', 'b', 'a', 'b', 'a', 'b', 'a', 'b']);
    expect(times.get('a')).toHaveLength(3);
  });

  it('writes CSV with quoting and a Markdown table', () => {
    const rows: Row[] = [
      { method: 'x, y', seconds: 0.5 },
      { method: 'z', seconds: 1e-6, extra: null },
    ];
    expect(toCsv(rows)).toBe('method,seconds,extra\n"x, y",0.5,\nz,0.000001,\n');
    expect(toMarkdownTable(rows)).toContain('| z | 1.00e-6 | — |');
  });
});
