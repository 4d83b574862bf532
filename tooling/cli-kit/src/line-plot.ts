/** One line of a {@link linePlot}. */
export interface Series {
  /** Legend label. */
  name: string;
  /** (x, y) points; non-finite or, on log axes, non-positive values are left out. */
  points: readonly (readonly [number, number])[];
  /** Draw dashed (e.g. for a reference line). */
  dashed?: boolean;
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

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

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
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      const v = 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
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

/** A self-contained SVG line plot (no fonts or scripts fetched), linear or log on each axis. */
export function linePlot(spec: PlotSpec): string {
  const width = 720;
  const height = 440;
  const left = 72;
  const right = 190;
  const top = 40;
  const bottom = 56;
  const keep = (v: number, log: boolean | undefined) => Number.isFinite(v) && (!log || v > 0);
  const series = spec.series.map((s) => ({ ...s, points: s.points.filter(([x, y]) => keep(x, spec.logX) && keep(y, spec.logY)) }));
  const xs = series.flatMap((s) => s.points.map(([x]) => x)).concat((spec.markers ?? []).map((m) => m.x).filter((x) => keep(x, spec.logX)));
  const ys = series.flatMap((s) => s.points.map(([, y]) => y));
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  parts.push(`<text x="${left}" y="22" font-size="15" font-weight="bold">${escapeXml(spec.title)}</text>`);
  if (xs.length === 0 || ys.length === 0) {
    parts.push(`<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no data</text></svg>`);
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
  parts.push(`<rect x="${left}" y="${top}" width="${width - left - right}" height="${height - top - bottom}" fill="none" stroke="#444"/>`);
  for (const v of ticks(x0, x1, spec.logX ?? false)) {
    parts.push(`<line x1="${px(v)}" y1="${top}" x2="${px(v)}" y2="${height - bottom}" stroke="#ddd"/>`);
    parts.push(`<text x="${px(v)}" y="${height - bottom + 16}" text-anchor="middle">${formatTick(v)}</text>`);
  }
  for (const v of ticks(y0, y1, spec.logY ?? false)) {
    parts.push(`<line x1="${left}" y1="${py(v)}" x2="${width - right}" y2="${py(v)}" stroke="#ddd"/>`);
    parts.push(`<text x="${left - 6}" y="${py(v) + 4}" text-anchor="end">${formatTick(v)}</text>`);
  }
  parts.push(`<text x="${(left + width - right) / 2}" y="${height - 14}" text-anchor="middle">${escapeXml(spec.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(spec.yLabel)}</text>`);
  (spec.markers ?? []).forEach((marker, k) => {
    if (!keep(marker.x, spec.logX) || marker.x < x0 || marker.x > x1) return;
    parts.push(`<line x1="${px(marker.x)}" y1="${top}" x2="${px(marker.x)}" y2="${height - bottom}" stroke="#000" stroke-dasharray="2 3"/>`);
    // Labels step down so that markers close together stay readable.
    parts.push(`<text x="${px(marker.x) + 4}" y="${top + 14 + 14 * k}" font-size="11">${escapeXml(marker.label)}</text>`);
  });
  series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    const path = s.points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
    if (s.points.length > 0) {
      parts.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
      for (const [x, y] of s.points) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="2.5" fill="${color}"/>`);
    }
    const ly = top + 8 + k * 18;
    parts.push(`<line x1="${width - right + 12}" y1="${ly}" x2="${width - right + 32}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    parts.push(`<text x="${width - right + 38}" y="${ly + 4}">${escapeXml(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
