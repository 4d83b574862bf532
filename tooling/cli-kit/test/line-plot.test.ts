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
    // One line per series in the plot, one in the legend.
    expect(svg.match(/<path /g)).toHaveLength(2 * 2);
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

  /** Each legend entry (its line, point and name are three lines of the SVG): the line's colour and width, whether it is hollow, the point's shape. */
  const lines = svg.split('\n');
  const legend = lines.flatMap((text, i) =>
    /^<text class="fg" x="[\d.]+" y="[\d.]+">s\d+<\/text>$/.test(text)
      ? [
          {
            color: /stroke="(#[0-9a-f]{6})"/.exec(lines[i - 2])![1],
            width: /stroke-width="([\d.]+)"/.exec(lines[i - 2])![1],
            hollow: lines[i - 2].includes('class="hollow"') && lines[i - 1].includes('class="hollow"'),
            shape: /^<(\w+)/.exec(lines[i - 1])![1],
          },
        ]
      : [],
  );

  it('gives every series its own colour and shape pair and a legend entry inside the picture', () => {
    expect(legend).toHaveLength(14);
    expect(new Set(legend.map((l) => `${l.color} ${l.shape}`)).size).toBe(14);
    const height = Number(/viewBox="0 0 720 (\d+)"/.exec(svg)![1]);
    const lastLegend = Math.max(...[...svg.matchAll(/<text class="fg" x="[\d.]+" y="([\d.]+)">s\d+<\/text>/g)].map((m) => Number(m[1])));
    expect(lastLegend).toBeLessThan(height);
  });

  it('draws a colour that comes round again hollow, so the eleventh series is not taken for the first', () => {
    expect(legend.map((l) => l.hollow)).toEqual(Array.from({ length: 14 }, (_, k) => k >= 10));
    expect(legend.map((l) => l.width)).toEqual(Array.from({ length: 14 }, (_, k) => (k >= 10 ? '3.6' : '2')));
    expect(legend[10].color).toBe(legend[0].color);
    // In the plot too: four hollow lines, each a coloured outline with a core of background.
    expect(svg.match(/<path d="M[^"]*" fill="none" class="hollow" style="fill:none" stroke-width="1.4"\/>/g)).toHaveLength(2 * 4);
  });

  it('writes marker labels along their lines, over the curves with a halo, and merges labels of markers too close to read apart', () => {
    expect(svg).toMatch(/class="fg halo" [^>]*>a; b<\/text>/);
    expect(svg).toMatch(/class="fg halo" [^>]*rotate\(90\)" font-size="11"[^>]*>c<\/text>/);
    // Every curve is drawn before the labels; the legend's lines come after them.
    const curve = /<path d="M[^"]*" fill="none" stroke="#/g;
    expect(svg.slice(0, svg.indexOf('>c</text>')).match(curve)).toHaveLength(14);
    expect(svg.match(curve)).toHaveLength(2 * 14);
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
    // The plot's lines, then the legend's in the series' order.
    expect(paths).toEqual(['#d62728', '#2ca02c', '#1f77b4', '#1f77b4', '#d62728', '#2ca02c']);
    expect(svg.match(/stroke-opacity="0.35"/g)).toHaveLength(2);
  });
});

describe('linePlot makes room for what it writes', () => {
  const points: [number, number][] = [
    [1, 1],
    [10, 1],
    [10, 1e-3],
    [20, 1e-3],
  ];

  it('widens the picture so that the longest legend entry fits, keeping the plot as wide', () => {
    const name = 'a legend entry far longer than the usual two hundred pixels allow';
    const svg = linePlot({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name, points }] });
    const width = Number(/viewBox="0 0 (\d+) /.exec(svg)![1]);
    const textX = Number(new RegExp(`<text class="fg" x="([\\d.]+)" y="[\\d.]+">${name}</text>`).exec(svg)![1]);
    expect(textX + 7 * name.length).toBeLessThanOrEqual(width);
    expect(/<rect class="frame" x="72" y="40" width="(\d+)"/.exec(svg)![1]).toBe('448');
    expect(/viewBox="0 0 (\d+) /.exec(linePlot({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'short', points }] }))![1]).toBe('720');
  });

  it('puts a marker label at the end of its line that the curves leave clear', () => {
    const label = (logY: boolean, x: number) =>
      new RegExp(`<text class="fg halo" transform="translate\\([\\d.]+ ([\\d.]+)\\) rotate\\(90\\)" font-size="11"( text-anchor="end")?>m</text>`).exec(
        linePlot({ title: 't', xLabel: 'x', yLabel: 'y', logY, series: [{ name: 's', points }], markers: [{ x, label: 'm' }] }),
      )!;
    // The curve runs along the top up to x = 10 and along the bottom after it.
    expect(label(true, 5)[2]).toBe(' text-anchor="end"');
    expect(label(true, 15)[2]).toBeUndefined();
    expect(Number(label(true, 5)[1])).toBeGreaterThan(Number(label(true, 15)[1]));
  });
});
