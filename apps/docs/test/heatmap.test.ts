import { describe, expect, it } from 'vitest';
import { type DiagramSpec, explore, phaseDiagram, PRESETS } from '../src/explorer/compute.js';
import { errorColour, formatError, formatSpeedup, heatmapTable, speedupColour } from '../src/explorer/heatmap.js';

const quick = PRESETS.quick.spec;

describe('the phase diagram', () => {
  it('computes every cell of a preset, each equal to the single point at its L, Γ and degree', async () => {
    const cells = await phaseDiagram(quick);
    expect(cells).toHaveLength(quick.gammas.length * quick.rows.length);
    for (const cell of cells) {
      const point = await explore({
        length: cell.length,
        d: quick.d,
        gamma: quick.gammas[cell.column],
        degree: cell.degree,
        epsilon: quick.epsilon,
        adaptation: quick.adaptation,
      });
      expect(cell.gamma).toBeCloseTo(quick.gammas[cell.column], 12);
      expect(cell.auto.chosen).toBe(point.auto.chosen);
      if ('refused' in point.fast) expect('refused' in cell.fast).toBe(true);
      else {
        if ('refused' in cell.fast) throw new Error(`cell ${cell.row},${cell.column} refused where the point did not`);
        expect(cell.fast.relativeError).toBeCloseTo(point.fast.relativeError, 12);
        expect(cell.fast.degree).toBe(cell.degree);
      }
    }
  });

  it('shows the transition: at the largest Γ the lowest degree is far less accurate than at the smallest', async () => {
    const cells = await phaseDiagram(quick);
    const errorAt = (column: number) => {
      const fast = cells.find((c) => c.row === 0 && c.column === column)!.fast;
      return 'refused' in fast ? Number.POSITIVE_INFINITY : fast.relativeError;
    };
    expect(errorAt(quick.gammas.length - 1)).toBeGreaterThan(100 * errorAt(0));
  });

  it('stops between cells when cancelled and returns what it has', async () => {
    let seen = 0;
    const cells = await phaseDiagram(
      quick,
      undefined,
      () => seen++,
      () => seen >= 2,
    );
    expect(cells).toHaveLength(2);
  });
});

describe('the heat-map tables', () => {
  const spec: DiagramSpec = { d: 4, epsilon: 1e-3, adaptation: 'partial', gammas: [0.5, 1.5, 3], axis: 'degree', rows: [{ length: 256, degree: 1 }] };
  const base = { backend: 'cpu', threshold: Math.sqrt(Math.log(256)), exactSeconds: 0.02, exactLoss: 1, length: 256, degree: 1, row: 0 };
  const cells = [
    {
      ...base,
      column: 0,
      gamma: 0.5,
      fast: { seconds: 0.01, loss: 1, degree: 1, rank: 5, relativeError: 2e-4, softmaxBound: 5e-4, gradientBound: 1e-3 },
      auto: { chosen: 'fast' as const, reason: '', degree: 1, rank: 5 },
    },
    { ...base, column: 2, gamma: 3, fast: { refused: 'not positive' }, auto: { chosen: 'exact' as const, reason: '', degree: undefined, rank: undefined } },
  ];
  const html = heatmapTable(spec, cells, 'error');

  it('marks the first Γ past √log L, the certified cells, refusals, pending cells and auto', () => {
    // √log 256 ≈ 2.35: the third column (Γ = 3) is the first at or past it.
    expect(html).toMatch(/<td class="cell crossing refused" data-row="0" data-column="2"/);
    expect(html).toMatch(/<td class="cell certified" data-row="0" data-column="0" data-value="0.0002"/);
    expect(html).toMatch(/<td class="cell pending" data-row="0" data-column="1">…<\/td>/);
    expect(html).toContain('<span class="value">2e-4</span><span class="auto">1</span>');
    expect(html).toContain('<span class="value">⊘</span><span class="auto">E</span>');
    expect(html).toContain(`aria-label="Γ 0.5, g = 1: relative error 2e-4, 2.0× faster than exact, certified within ε; 'auto' runs fast at degree 1"`);
  });

  it('draws the speed-up panel from the same cells', () => {
    expect(heatmapTable(spec, cells, 'speedup')).toContain('<span class="value">2.0×</span>');
  });

  it('formats and colours values monotonically', () => {
    expect([formatError(3.2e-4), formatError(0), formatSpeedup(2.345), formatSpeedup(12.6)]).toEqual(['3e-4', '0', '2.3×', '13×']);
    const hue = (c: { background: string }) => Number(/hsl\((\d+)/.exec(c.background)![1]);
    expect(hue(errorColour(1e-9))).toBeGreaterThan(hue(errorColour(1e-4)));
    expect(hue(errorColour(1e-4))).toBeGreaterThan(hue(errorColour(1)));
    expect(hue(speedupColour(3))).not.toBe(hue(speedupColour(0.5)));
  });
});
