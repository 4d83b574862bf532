// The phase diagram drawn as two heat-map tables (Γ across, degree or length down): the measured
// relative gradient error and the speed-up of fast over exact. Tables rather than a picture: each
// value is text a screen reader reads and a narrow screen reflows, and each cell is a button.
import type { DiagramCell, DiagramSpec } from './compute.js';

/** Errors at or below this are drawn in the coolest colour. */
const ERROR_FLOOR = 1e-8;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** A relative error as two characters of mantissa: 3e-4. */
export function formatError(error: number): string {
  return error === 0 ? '0' : error.toExponential(0).replace('e+', 'e');
}

/** A speed-up as 2.3× (or 12× from ten up). */
export function formatSpeedup(ratio: number): string {
  return ratio >= 10 ? `${Math.round(ratio)}×` : `${ratio.toFixed(1)}×`;
}

/** Background and text colour of an error: blue at ≤ 1e-8 through to red at ≥ 1, on a log scale. */
export function errorColour(error: number): { background: string; text: string } {
  const t = Math.min(1, Math.max(0, Math.log10(Math.max(error, ERROR_FLOOR) / ERROR_FLOOR) / -Math.log10(ERROR_FLOOR)));
  const hue = Math.round(215 - 215 * t);
  const lightness = Math.round(42 + 14 * Math.sin(Math.PI * t));
  return { background: `hsl(${hue} 70% ${lightness}%)`, text: lightness > 52 ? '#111' : '#fff' };
}

/** Background and text colour of a speed-up: green where fast wins, red where exact does, stronger with |log₂|. */
export function speedupColour(ratio: number): { background: string; text: string } {
  const t = Math.min(1, Math.abs(Math.log2(ratio)) / 4);
  const lightness = Math.round(80 - 45 * t);
  return { background: `hsl(${ratio >= 1 ? 135 : 2} 60% ${lightness}%)`, text: lightness > 55 ? '#111' : '#fff' };
}

/** What 'auto' chose, in one or two characters: E (exact), M (mixed), or the fast path's degree. */
export function autoMark(cell: DiagramCell): string {
  return cell.auto.chosen === 'exact' ? 'E' : cell.auto.chosen === 'mixed' ? 'M' : String(cell.auto.degree);
}

/** The first column of each row whose Γ reaches that row's √log L (none when no computed cell says the threshold). */
function crossings(spec: DiagramSpec, cells: readonly DiagramCell[]): (number | undefined)[] {
  return spec.rows.map((_, row) => {
    const threshold = cells.find((c) => c.row === row)?.threshold;
    if (threshold === undefined) return undefined;
    const column = spec.gammas.findIndex((gamma) => gamma >= threshold);
    return column < 0 ? undefined : column;
  });
}

/** The label of a row: its degree or its length, whichever the diagram varies. */
export function rowLabel(spec: DiagramSpec, row: number): string {
  const r = spec.rows[row];
  return spec.axis === 'degree' ? `g = ${r.degree}` : `L = ${r.length.toLocaleString('en')}`;
}

function describe(spec: DiagramSpec, cell: DiagramCell, epsilon: number): string {
  const where = `Γ ${spec.gammas[cell.column]}, ${rowLabel(spec, cell.row)}`;
  const auto = cell.auto.chosen === 'fast' ? `'auto' runs fast at degree ${cell.auto.degree}` : `'auto' runs ${cell.auto.chosen}`;
  if ('refused' in cell.fast) return `${where}: the fast path refused; ${auto}`;
  const certified = cell.fast.softmaxBound <= epsilon ? 'certified within ε' : 'not certified within ε';
  return `${where}: relative error ${formatError(cell.fast.relativeError)}, ${formatSpeedup(cell.exactSeconds / cell.fast.seconds)} faster than exact, ${certified}; ${auto}`;
}

/**
 * One heat map as an HTML table. Cells not yet computed show an ellipsis; a dashed left edge marks
 * where Γ reaches √log L in each row; an outline marks cells whose certified attention error bound
 * meets ε; the corner mark says what 'auto' chose there.
 */
export function heatmapTable(spec: DiagramSpec, cells: readonly DiagramCell[], kind: 'error' | 'speedup', selected?: { row: number; column: number }): string {
  const byPosition = new Map(cells.map((c) => [`${c.row},${c.column}`, c]));
  const crossing = crossings(spec, cells);
  const corner = spec.axis === 'degree' ? `degree \\ Γ (L = ${spec.rows[0].length.toLocaleString('en')})` : `length \\ Γ (g = ${spec.rows[0].degree})`;
  const head = `<tr><th scope="col">${escapeHtml(corner)}</th>${spec.gammas.map((g) => `<th scope="col">${g}</th>`).join('')}</tr>`;
  const body = spec.rows
    .map((_, row) => {
      const tds = spec.gammas.map((_, column) => {
        const cell = byPosition.get(`${row},${column}`);
        const classes = ['cell'];
        if (crossing[row] === column) classes.push('crossing');
        if (selected && selected.row === row && selected.column === column) classes.push('selected');
        if (!cell) return `<td class="${classes.join(' ')} pending" data-row="${row}" data-column="${column}">…</td>`;
        let text: string;
        let colour: { background: string; text: string } | undefined;
        let value = '';
        if ('refused' in cell.fast) {
          classes.push('refused');
          text = '⊘';
        } else {
          if (cell.fast.softmaxBound <= spec.epsilon) classes.push('certified');
          const number = kind === 'error' ? cell.fast.relativeError : cell.exactSeconds / cell.fast.seconds;
          text = kind === 'error' ? formatError(number) : formatSpeedup(number);
          colour = kind === 'error' ? errorColour(number) : speedupColour(number);
          value = ` data-value="${number}"`;
        }
        const style = colour ? ` style="background:${colour.background};color:${colour.text}"` : '';
        const label = escapeHtml(describe(spec, cell, spec.epsilon));
        return `<td class="${classes.join(' ')}" data-row="${row}" data-column="${column}"${value}${style}><button type="button" aria-label="${label}" title="${label}"><span class="value">${text}</span><span class="auto">${autoMark(cell)}</span></button></td>`;
      });
      return `<tr><th scope="row">${escapeHtml(rowLabel(spec, row))}</th>${tds.join('')}</tr>`;
    })
    .join('');
  const caption = kind === 'error' ? 'Measured relative gradient error of the fast path' : 'Speed-up of the fast path over exact (exact time / fast time)';
  // Narrower than this, a wide diagram scrolls in its box rather than squeezing values out of their cells.
  const minWidth = `calc(4.2rem + ${spec.gammas.length} * 2.2rem)`;
  return `<table class="heatmap" data-kind="${kind}" style="min-width:${minWidth}"><caption>${caption}</caption><thead>${head}</thead><tbody>${body}</tbody></table>`;
}
