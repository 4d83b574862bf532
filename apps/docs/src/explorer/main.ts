// The explorer page: reads the forms, hands the work to the worker, shows progress, the phase
// diagram as it fills in, and one point's numbers (computed, or a diagram cell clicked).
import { cellCount, type DiagramCell, type DiagramRow, type DiagramSpec, type ExplorerResult, PRESETS } from './compute.js';
import { heatmapTable } from './heatmap.js';
import type { BackendChoice, ExploreMessage, ExploreRequest } from './worker.js';

const form = document.querySelector<HTMLFormElement>('#explorer')!;
const status = document.querySelector<HTMLParagraphElement>('#status')!;
const progress = document.querySelector<HTMLProgressElement>('#progress')!;
const table = document.querySelector<HTMLTableElement>('#results')!;
const button = form.querySelector('button')!;
const diagramForm = document.querySelector<HTMLFormElement>('#diagram')!;
const diagramStatus = document.querySelector<HTMLParagraphElement>('#diagram-status')!;
const diagramProgress = document.querySelector<HTMLProgressElement>('#diagram-progress')!;
const maps = document.querySelector<HTMLDivElement>('#maps')!;
const diagramButton = diagramForm.querySelector<HTMLButtonElement>('button[type=submit]')!;
const cancelButton = document.querySelector<HTMLButtonElement>('#cancel')!;
/** Cells beyond this make a diagram that runs for minutes; the form refuses it. */
const MAX_CELLS = 96;

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });

function number(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return String(value);
  return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e4 ? value.toPrecision(digits) : value.toExponential(digits - 1);
}

/** One result row; `data-value` keeps the raw number so a test can compare it exactly. */
function row(label: string, key: string, value: number | string, shown?: string): string {
  const raw = typeof value === 'number' ? ` data-value="${value}"` : '';
  return `<tr data-key="${key}"${raw}><th>${label}</th><td>${shown ?? (typeof value === 'number' ? number(value) : value)}</td></tr>`;
}

function render(result: ExplorerResult, where?: string): void {
  const rows = [
    ...(where ? [row('Point', 'point', where)] : []),
    row('Backend', 'backend', result.backend),
    row('Γ (measured)', 'gamma', result.gamma),
    row('√(log L)', 'threshold', result.threshold),
    row('Exact: time (s)', 'exactSeconds', result.exactSeconds),
    row('Exact: loss', 'exactLoss', result.exactLoss),
  ];
  if ('refused' in result.fast) rows.push(row('Fast path', 'fastRefused', `refused: ${result.fast.refused}`));
  else {
    const f = result.fast;
    rows.push(
      row('Fast: degree g', 'degree', f.degree, String(f.degree)),
      row('Fast: rank k = C(d+g, g)', 'rank', f.rank, String(f.rank)),
      row('Fast: time (s)', 'fastSeconds', f.seconds),
      row('Speed-up (exact / fast)', 'speedup', result.exactSeconds / f.seconds),
      row('Fast: relative gradient error (measured)', 'relativeError', f.relativeError),
      row('Certified attention error bound', 'softmaxBound', f.softmaxBound),
      f.gradientBound === undefined
        ? row('Certified gradient bound', 'gradientBound', 'not certified (float32)')
        : row('Certified gradient bound (relative)', 'gradientBound', f.gradientBound),
    );
  }
  rows.push(row("'auto' would use", 'autoChosen', result.auto.chosen, `<span class="verdict-${result.auto.chosen}">${result.auto.chosen}</span>`));
  if (result.auto.degree !== undefined)
    rows.push(row("'auto' planned degree (rank)", 'autoDegree', result.auto.degree, `${result.auto.degree} (${result.auto.rank})`));
  rows.push(row('Why', 'autoReason', result.auto.reason));
  table.tBodies[0].innerHTML = rows.join('');
  table.hidden = false;
}

function backendOf(data: FormData): BackendChoice {
  return data.get('backend') === 'cpu' ? 'cpu' : data.get('backend') === 'gpu' ? 'gpu' : 'wasm';
}

function params(): Extract<ExploreRequest, { kind: 'point' }> {
  const data = new FormData(form);
  const degree = String(data.get('degree'));
  return {
    kind: 'point',
    params: {
      length: Number(data.get('length')),
      d: Number(data.get('d')),
      gamma: Number(data.get('gamma')),
      degree: degree === 'auto' ? undefined : Number(degree),
      epsilon: Number(data.get('epsilon')),
      adaptation: data.get('adaptation') === 'full' ? 'full' : 'partial',
    },
    backend: backendOf(data),
  };
}

/** A comma-separated list of numbers, each checked; a message naming the field when one is not. */
function numbers(text: string, field: string, valid: (x: number) => boolean, rule: string): number[] {
  const values = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map(Number);
  if (values.length === 0 || !values.every((x) => Number.isFinite(x) && valid(x))) throw new Error(`${field}: give a comma-separated list of ${rule}`);
  return values;
}

/** The diagram the form describes, or a message saying what is wrong with it. */
function diagramSpec(): { spec: DiagramSpec; backend: BackendChoice } {
  const data = new FormData(diagramForm);
  const gammas = [...new Set(numbers(String(data.get('gammas')), 'Γ values', (x) => x > 0 && x <= 8, 'numbers in (0, 8]'))].sort((a, b) => a - b);
  const degrees = numbers(String(data.get('degrees')), 'Degrees', (x) => Number.isInteger(x) && x >= 1 && x <= 12, 'whole numbers from 1 to 12');
  const lengths = numbers(String(data.get('lengths')), 'Lengths', (x) => Number.isInteger(x) && x >= 16 && x <= 16384, 'whole numbers from 16 to 16,384');
  const axis = data.get('axis') === 'length' ? 'length' : 'degree';
  const rows: DiagramRow[] =
    axis === 'degree' ? degrees.map((degree) => ({ length: lengths[0], degree })) : lengths.map((length) => ({ length, degree: degrees[0] }));
  const spec: DiagramSpec = {
    d: Number(data.get('d')),
    epsilon: Number(data.get('epsilon')),
    adaptation: data.get('adaptation') === 'full' ? 'full' : 'partial',
    gammas,
    axis,
    rows,
  };
  if (cellCount(spec) > MAX_CELLS) throw new Error(`${cellCount(spec)} cells: at most ${MAX_CELLS} (fewer Γ values or rows)`);
  return { spec, backend: backendOf(data) };
}

/** Fills the diagram form from a preset. */
function applyPreset(name: string): void {
  const preset = PRESETS[name];
  if (!preset) return;
  const { spec } = preset;
  const field = (key: string) => diagramForm.elements.namedItem(key) as HTMLInputElement | HTMLSelectElement;
  field('axis').value = spec.axis;
  field('gammas').value = spec.gammas.join(', ');
  field('degrees').value = [...new Set(spec.rows.map((r) => r.degree))].join(', ');
  field('lengths').value = [...new Set(spec.rows.map((r) => r.length))].join(', ');
  field('d').value = String(spec.d);
  field('epsilon').value = String(spec.epsilon);
  field('adaptation').value = spec.adaptation;
}

let diagram: { spec: DiagramSpec; cells: DiagramCell[]; selected?: { row: number; column: number } } | undefined;

function drawDiagram(): void {
  if (!diagram) return;
  const { spec, cells, selected } = diagram;
  maps.innerHTML = `<div class="table-scroll">${heatmapTable(spec, cells, 'error', selected)}</div><div class="table-scroll">${heatmapTable(spec, cells, 'speedup', selected)}</div>`;
  maps.hidden = false;
}

worker.onmessage = (event: MessageEvent<ExploreMessage>) => {
  const message = event.data;
  if (message.type === 'ready') {
    const wasm = message.wasm ? `WebAssembly SIMD (${message.wasm}, float64)` : 'no WebAssembly SIMD here: the CPU (float64)';
    const gpu = message.gpu ? `the GPU (${message.gpu}, float32)` : 'no WebGPU or WebGL2 here';
    status.textContent = `Ready: computing in a Web Worker on ${wasm}; GPU: ${gpu}.`;
    diagramStatus.textContent = 'Ready: choose a preset or your own Γ values and rows, then compute.';
    button.disabled = false;
    diagramButton.disabled = false;
  } else if (message.type === 'stage') {
    progress.value = message.index;
    status.textContent = `Running: ${message.stage}…`;
  } else if (message.type === 'result') {
    progress.value = progress.max;
    status.textContent = `Done on ${message.result.backend}.`;
    render(message.result);
    button.disabled = false;
  } else if (message.type === 'cell') {
    if (!diagram) return;
    diagram.cells.push(message.cell);
    diagramProgress.value = diagram.cells.length;
    diagramStatus.textContent = `Computing on ${message.cell.backend}: ${diagram.cells.length} of ${cellCount(diagram.spec)} cells…`;
    drawDiagram();
  } else if (message.type === 'diagram') {
    diagramStatus.textContent = message.cancelled
      ? `Cancelled after ${message.cells} of ${diagram ? cellCount(diagram.spec) : '?'} cells on ${message.backend}.`
      : `Done on ${message.backend}: ${message.cells} cells. Click a cell for its numbers.`;
    diagramButton.disabled = false;
    cancelButton.disabled = true;
  } else {
    status.textContent = `Error: ${message.message}`;
    diagramStatus.textContent = `Error: ${message.message}`;
    button.disabled = false;
    diagramButton.disabled = false;
    cancelButton.disabled = true;
  }
};

button.disabled = true;
diagramButton.disabled = true;
form.addEventListener('submit', (event) => {
  event.preventDefault();
  button.disabled = true;
  progress.value = 0;
  worker.postMessage(params());
});

const presetSelect = diagramForm.elements.namedItem('preset') as HTMLSelectElement;
presetSelect.addEventListener('change', () => applyPreset(presetSelect.value));
diagramForm.addEventListener('input', (event) => {
  if (event.target !== presetSelect) presetSelect.value = 'custom';
});
diagramForm.addEventListener('submit', (event) => {
  event.preventDefault();
  let request: { spec: DiagramSpec; backend: BackendChoice };
  try {
    request = diagramSpec();
  } catch (error) {
    diagramStatus.textContent = `Error: ${error instanceof Error ? error.message : String(error)}`;
    return;
  }
  diagram = { spec: request.spec, cells: [] };
  diagramProgress.max = cellCount(request.spec);
  diagramProgress.value = 0;
  diagramStatus.textContent = `Computing ${cellCount(request.spec)} cells…`;
  drawDiagram();
  diagramButton.disabled = true;
  cancelButton.disabled = false;
  worker.postMessage({ kind: 'diagram', ...request } satisfies ExploreRequest);
});
cancelButton.addEventListener('click', () => {
  cancelButton.disabled = true;
  diagramStatus.textContent = 'Cancelling after the cell in progress…';
  worker.postMessage({ kind: 'cancel' } satisfies ExploreRequest);
});
maps.addEventListener('click', (event) => {
  const td = (event.target as HTMLElement).closest<HTMLTableCellElement>('td[data-row]');
  if (!diagram || !td) return;
  const [row, column] = [Number(td.dataset.row), Number(td.dataset.column)];
  const cell = diagram.cells.find((c) => c.row === row && c.column === column);
  if (!cell) return;
  diagram.selected = { row, column };
  drawDiagram();
  render(cell, `L = ${cell.length}, Γ = ${diagram.spec.gammas[column]}, degree ${cell.degree}`);
  table.scrollIntoView({ block: 'nearest' });
});
applyPreset('crossing');
