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
        {
          name: 'a',
          points: [
            [1, 1],
            [10, 100],
            [100, 0],
          ],
        },
        {
          name: 'b',
          points: [
            [1, 2],
            [10, 20],
          ],
          dashed: true,
        },
      ],
      markers: [{ x: 5, label: 'm' }],
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<path /g)).toHaveLength(2);
    expect(svg).toContain('T &lt;1&gt;');
    expect(svg).not.toContain('NaN');
  });
});

describe('linePlot keeps many series apart', () => {
  const series = Array.from({ length: 14 }, (_, k) => ({
    name: `s${k}`,
    points: [
      [1, k + 1],
      [2, k + 2],
    ] as [number, number][],
  }));
  const svg = linePlot({
    title: 't',
    xLabel: 'x',
    yLabel: 'y',
    series,
    markers: [
      { x: 1.5, label: 'a' },
      { x: 1.501, label: 'b' },
      { x: 1.9, label: 'c' },
    ],
  });

  it('gives every series its own colour and shape pair and a legend entry inside the picture', () => {
    const strokes = [...svg.matchAll(/<path d="M[^"]*" fill="none" stroke="(#[0-9a-f]{6})"/g)].map((m) => m[1]);
    const legendShapes = [...svg.matchAll(/<line x1="[\d.]+" y1="([\d.]+)" x2="[\d.]+" y2="[\d.]+" stroke="(#[0-9a-f]{6})" stroke-width="2"\/>\n<(\w+)/g)].map(
      (m) => `${m[2]} ${m[3]}`,
    );
    expect(strokes).toHaveLength(14);
    expect(new Set(legendShapes).size).toBe(14);
    const height = Number(/viewBox="0 0 720 (\d+)"/.exec(svg)![1]);
    const lastLegend = Math.max(...[...svg.matchAll(/<text class="fg" x="[\d.]+" y="([\d.]+)">s\d+<\/text>/g)].map((m) => Number(m[1])));
    expect(lastLegend).toBeLessThan(height);
  });

  it('writes marker labels along their lines and merges labels of markers too close to read apart', () => {
    expect(svg).toContain('>a; b</text>');
    expect(svg).toMatch(/rotate\(90\)" font-size="11">c<\/text>/);
  });

  it('follows a dark colour scheme', () => {
    expect(svg).toMatch(/@media \(prefers-color-scheme: dark\)\{\.bg\{fill:#14171a\}/);
  });
});

describe('linePlot on a short log range and with overlapping series', () => {
  it('labels a log axis spanning under three decades at 1, 2 and 5 times powers of ten', () => {
    const svg = linePlot({
      title: 't',
      xLabel: 'x',
      yLabel: 'y',
      logY: true,
      series: [
        {
          name: 'a',
          points: [
            [1, 0.03],
            [2, 0.9],
          ],
        },
      ],
    });
    const labels = [...svg.matchAll(/text-anchor="end">([^<]+)<\/text>/g)].map((m) => m[1]);
    expect(labels).toEqual(['0.05', '0.1', '0.2', '0.5']);
  });

  it('draws a dashed or faint series below the solid ones, and a faint one without shapes', () => {
    const svg = linePlot({
      title: 't',
      xLabel: 'x',
      yLabel: 'y',
      series: [
        {
          name: 'solid',
          points: [
            [1, 1],
            [2, 2],
          ],
        },
        {
          name: 'dashed',
          points: [
            [1, 1],
            [2, 2],
          ],
          dashed: true,
        },
        {
          name: 'faint',
          points: [
            [1, 1.5],
            [2, 2.5],
          ],
          faint: true,
        },
      ],
    });
    const paths = [...svg.matchAll(/<path d="M[^"]*" fill="none" stroke="(#[0-9a-f]{6})" stroke-width="(\d)"/g)].map((m) => m[1]);
    expect(paths).toEqual(['#d62728', '#2ca02c', '#1f77b4']);
    expect(svg.match(/stroke-opacity="0.35"/g)).toHaveLength(2);
  });
});
