/** One line of a {@link linePlot}. */
export interface Series {
  /** Legend label. */
  name: string;
  /** (x, y) points; non-finite or, on log axes, non-positive values are left out. */
  points: readonly (readonly [number, number])[];
  /** Draw dashed (e.g. for a reference line). */
  dashed?: boolean;
  /** Draw thin and pale, without point shapes (raw values behind their smoothed curve). */
  faint?: boolean;
}

/** A vertical marker line with a label, e.g. a threshold. */
export interface Marker {
  /** Where on the x axis. */
  x: number;
  /** Text beside the line. */
  label: string;
}

/** What {@link linePlot} draws. */
export interface PlotSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  logX?: boolean;
  logY?: boolean;
  series: readonly Series[];
  markers?: readonly Marker[];
}

/** Ten colours (Tableau 10, legible on white and on the dark background). */
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];
/**
 * Point shapes, cycled at a different period from the colours so that no two of the first 30
 * series share both colour and shape: a series stays identifiable in print, in grey and to a
 * reader who cannot tell two colours apart.
 */
const SHAPES = ['circle', 'square', 'triangle', 'diamond', 'down', 'cross'] as const;
/** Light and dark renderings: an SVG shown through <img> follows the reader's colour scheme. */
const STYLE = `<style>
.bg{fill:#fff}.fg{fill:#1d2125}.grid{stroke:#ddd}.frame,.marker{stroke:#444}.hollow{fill:#fff;stroke:#fff}.halo{paint-order:stroke;stroke:#fff;stroke-width:4px;stroke-linejoin:round}
@media (prefers-color-scheme: dark){.bg{fill:#14171a}.fg{fill:#e3e6e9}.grid{stroke:#30363d}.frame,.marker{stroke:#9aa4ae}.hollow{fill:#14171a;stroke:#14171a}.halo{stroke:#14171a}}
</style>`;
/** Width in pixels of one character of the 12 px sans-serif text, generously: enough for a legend entry to fit. */
const CHAR_WIDTH = 7;
/** The same for the 11 px marker labels. */
const LABEL_CHAR_WIDTH = 6.5;

/**
 * How the k-th series is drawn. Past the ten colours a colour comes round again, and the series
 * that has it the second time is drawn hollow — its line a coloured outline around the
 * background, its points outlined — so that it cannot be taken for the first.
 */
function look(k: number): { color: string; kind: (typeof SHAPES)[number]; hollow: boolean } {
  return { color: COLORS[k % COLORS.length], kind: SHAPES[k % SHAPES.length], hollow: Math.floor(k / COLORS.length) % 2 === 1 };
}

/** A point shape of `size` around (x, y), filled with `color`, or outlined in it when `hollow`. */
function shape(kind: (typeof SHAPES)[number], x: number, y: number, color: string, hollow: boolean, size = 3.2): string {
  const at = (dx: number, dy: number) => `${(x + dx).toFixed(1)},${(y + dy).toFixed(1)}`;
  const paint = hollow ? ` class="hollow" style="stroke:${color}" stroke-width="1.5"` : ` fill="${color}"`;
  switch (kind) {
    case 'circle':
      return `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${size}"${paint}/>`;
    case 'square':
      return `<rect x="${(x - size).toFixed(1)}" y="${(y - size).toFixed(1)}" width="${2 * size}" height="${2 * size}"${paint}/>`;
    case 'triangle':
      return `<polygon points="${at(0, -size * 1.2)} ${at(size * 1.1, size * 0.8)} ${at(-size * 1.1, size * 0.8)}"${paint}/>`;
    case 'down':
      return `<polygon points="${at(0, size * 1.2)} ${at(size * 1.1, -size * 0.8)} ${at(-size * 1.1, -size * 0.8)}"${paint}/>`;
    case 'diamond':
      return `<polygon points="${at(0, -size * 1.3)} ${at(size * 1.3, 0)} ${at(0, size * 1.3)} ${at(-size * 1.3, 0)}"${paint}/>`;
    case 'cross':
      // A cross has no inside: the hollow one is a thin cross in a ring.
      return hollow
        ? `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${size + 0.8}"${paint}/><path d="M${at(-size / 1.6, -size / 1.6)} L${at(size / 1.6, size / 1.6)} M${at(-size / 1.6, size / 1.6)} L${at(size / 1.6, -size / 1.6)}" stroke="${color}" stroke-width="1.2"/>`
        : `<path d="M${at(-size, -size)} L${at(size, size)} M${at(-size, size)} L${at(size, -size)}" stroke="${color}" stroke-width="2"/>`;
  }
}

/** A series' line along `d` (path data): solid or dashed, faint, or hollow (a coloured outline around a core of background). */
function line(d: string, color: string, { dashed, faint, hollow }: { dashed?: boolean; faint?: boolean; hollow: boolean }): string {
  const dash = dashed ? ' stroke-dasharray="6 4"' : '';
  if (faint) return `<path d="${d}" fill="none" stroke="${color}" stroke-width="1" stroke-opacity="0.35"${dash}/>`;
  if (!hollow) return `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`;
  return `<path d="${d}" fill="none" stroke="${color}" stroke-width="3.6"${dash}/><path d="${d}" fill="none" class="hollow" style="fill:none" stroke-width="1.4"${dash}/>`;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-2) return v.toExponential(0).replace('e+', 'e');
  return Number(v.toPrecision(3)).toString();
}

function ticks(lo: number, hi: number, log: boolean): number[] {
  if (log) {
    // Powers of ten; over fewer than three decades also 2× and 5× them, so a short range still reads.
    const steps = Math.log10(hi / lo) < 3 ? [1, 2, 5] : [1];
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      for (const m of steps) {
        const v = Number((m * 10 ** e).toPrecision(12));
        if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
      }
    }
    if (out.length >= 2) return out;
    return [lo, Math.sqrt(lo * hi), hi];
  }
  const span = hi - lo || 1;
  const step = 10 ** Math.floor(Math.log10(span / 5));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => span / s <= 8) ?? step * 10;
  const out: number[] = [];
  for (let v = Math.ceil(lo / nice) * nice; v <= hi + 1e-12; v += nice) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * A self-contained SVG line plot (no fonts or scripts fetched), linear or log on each axis. Every
 * series has its own colour and point shape; the plot follows the reader's light or dark scheme.
 */
export function linePlot(spec: PlotSpec): string {
  const left = 72;
  // The legend beside the plot is as wide as its longest entry.
  const right = Math.max(200, 50 + CHAR_WIDTH * Math.max(0, ...spec.series.map((s) => [...s.name].length)));
  const width = 520 + right;
  const top = 40;
  const bottom = 56;
  const legendRow = 18;
  // Tall enough for every legend entry beside the plot.
  const height = Math.max(440, top + 8 + spec.series.length * legendRow + bottom);
  const keep = (v: number, log: boolean | undefined) => Number.isFinite(v) && (!log || v > 0);
  const series = spec.series.map((s) => ({ ...s, points: s.points.filter(([x, y]) => keep(x, spec.logX) && keep(y, spec.logY)) }));
  const xs = series.flatMap((s) => s.points.map(([x]) => x)).concat((spec.markers ?? []).map((m) => m.x).filter((x) => keep(x, spec.logX)));
  const ys = series.flatMap((s) => s.points.map(([, y]) => y));
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
  );
  parts.push(STYLE);
  parts.push(`<rect class="bg" width="${width}" height="${height}"/>`);
  parts.push(`<text class="fg" x="${left}" y="22" font-size="15" font-weight="bold">${escapeXml(spec.title)}</text>`);
  if (xs.length === 0 || ys.length === 0) {
    parts.push(`<text class="fg" x="${width / 2}" y="${height / 2}" text-anchor="middle">no data</text></svg>`);
    return parts.join('\n');
  }
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) [x0, x1] = spec.logX ? [x0 / 2, x1 * 2] : [x0 - 1, x1 + 1];
  if (y0 === y1) [y0, y1] = spec.logY ? [y0 / 2, y1 * 2] : [y0 - 1, y1 + 1];
  const tx = (v: number) => (spec.logX ? Math.log(v / x0) / Math.log(x1 / x0) : (v - x0) / (x1 - x0));
  const ty = (v: number) => (spec.logY ? Math.log(v / y0) / Math.log(y1 / y0) : (v - y0) / (y1 - y0));
  const px = (v: number) => left + tx(v) * (width - left - right);
  const py = (v: number) => height - bottom - ty(v) * (height - top - bottom);
  parts.push(`<rect class="frame" x="${left}" y="${top}" width="${width - left - right}" height="${height - top - bottom}" fill="none"/>`);
  for (const v of ticks(x0, x1, spec.logX ?? false)) {
    parts.push(`<line class="grid" x1="${px(v)}" y1="${top}" x2="${px(v)}" y2="${height - bottom}"/>`);
    parts.push(`<text class="fg" x="${px(v)}" y="${height - bottom + 16}" text-anchor="middle">${formatTick(v)}</text>`);
  }
  for (const v of ticks(y0, y1, spec.logY ?? false)) {
    parts.push(`<line class="grid" x1="${left}" y1="${py(v)}" x2="${width - right}" y2="${py(v)}"/>`);
    parts.push(`<text class="fg" x="${left - 6}" y="${py(v) + 4}" text-anchor="end">${formatTick(v)}</text>`);
  }
  parts.push(`<text class="fg" x="${(left + width - right) / 2}" y="${height - 14}" text-anchor="middle">${escapeXml(spec.xLabel)}</text>`);
  parts.push(`<text class="fg" transform="translate(16 ${(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(spec.yLabel)}</text>`);
  // Marker labels run along their own line, so markers a few pixels apart keep readable labels;
  // markers closer than a line of text share one label.
  const markers = (spec.markers ?? []).filter((m) => keep(m.x, spec.logX) && m.x >= x0 && m.x <= x1).sort((a, b) => a.x - b.x);
  const labelled: { x: number; labels: string[] }[] = [];
  for (const marker of markers) {
    const last = labelled[labelled.length - 1];
    parts.push(`<line class="marker" x1="${px(marker.x)}" y1="${top}" x2="${px(marker.x)}" y2="${height - bottom}" stroke-dasharray="2 3"/>`);
    if (last && px(marker.x) - px(last.x) < 13) last.labels.push(marker.label);
    else labelled.push({ x: marker.x, labels: [marker.label] });
  }
  // Dashed and faint series first: a solid curve on top of a dashed one it equals still shows both.
  const order = series.map((s, k) => ({ s, k })).sort((a, b) => Number(!a.s.dashed && !a.s.faint) - Number(!b.s.dashed && !b.s.faint));
  const drawn = series.map((s) => s.points.map(([x, y]) => [px(x), py(y)] as const));
  for (const { s, k } of order) {
    const { color, kind, hollow } = look(k);
    if (s.points.length === 0) continue;
    parts.push(line(drawn[k].map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${x.toFixed(1)},${y.toFixed(1)}`).join(' '), color, { ...s, hollow }));
    if (!s.faint) for (const [x, y] of drawn[k]) parts.push(shape(kind, x, y, color, hollow));
  }
  // Marker labels go over the curves, each at whichever end of its line (top or bottom) fewer
  // curves cross, with a halo of background that keeps it legible where one still does.
  const crossings = (x: number, yFrom: number, yTo: number) => {
    let count = 0;
    for (const points of drawn) {
      for (let i = 1; i < points.length; i++) {
        const [[ax, ay], [bx, by]] = [points[i - 1], points[i]];
        for (let t = 0; t <= 1; t += 1 / 32) {
          const [sx, sy] = [ax + t * (bx - ax), ay + t * (by - ay)];
          if (Math.abs(sx - x) < 8 && sy >= yFrom && sy <= yTo) count++;
        }
      }
    }
    return count;
  };
  for (const { x, labels } of labelled) {
    const text = escapeXml(labels.join('; '));
    const length = LABEL_CHAR_WIDTH * [...labels.join('; ')].length;
    const [lx, plotBottom] = [px(x) + 3, height - bottom];
    const atTop = crossings(px(x), top, top + length + 4) <= crossings(px(x), plotBottom - length - 4, plotBottom);
    parts.push(
      atTop
        ? `<text class="fg halo" transform="translate(${lx.toFixed(1)} ${top + 4}) rotate(90)" font-size="11">${text}</text>`
        : `<text class="fg halo" transform="translate(${lx.toFixed(1)} ${plotBottom - 4}) rotate(90)" font-size="11" text-anchor="end">${text}</text>`,
    );
  }
  series.forEach((s, k) => {
    const { color, kind, hollow } = look(k);
    const ly = top + 8 + k * legendRow;
    parts.push(line(`M${width - right + 10},${ly} L${width - right + 34},${ly}`, color, { ...s, hollow }));
    if (!s.faint) parts.push(shape(kind, width - right + 22, ly, color, hollow));
    parts.push(`<text class="fg" x="${width - right + 40}" y="${ly + 4}">${escapeXml(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
