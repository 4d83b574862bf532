import { describe, expect, it } from 'vitest';
import { linePlot } from '../src/index.js';

describe('linePlot', () => {
  it('draws a parseable SVG with one path per series and skips non-positive values on log axes', () => {
    const svg = linePlot({
      title: 'T <1>',
      xLabel: 'x',
      yLabel: 'y',
      logX: true,
      logY: true,
      series: [
        { name: 'a', points: [[1, 1], [10, 100], [100, 0]] },
        { name: 'b', points: [[1, 2], [10, 20]], dashed: true },
      ],
      markers: [{ x: 5, label: 'm' }],
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<path /g)).toHaveLength(2);
    expect(svg).toContain('T &lt;1&gt;');
    expect(svg).not.toContain('NaN');
  });
});
