// The explorer page: reads the form, hands the work to the worker, shows progress and results.
import type { ExplorerParams, ExplorerResult } from './compute.js';
import type { ExploreMessage, ExploreRequest } from './worker.js';

const form = document.querySelector<HTMLFormElement>('#explorer')!;
const status = document.querySelector<HTMLParagraphElement>('#status')!;
const progress = document.querySelector<HTMLProgressElement>('#progress')!;
const table = document.querySelector<HTMLTableElement>('#results')!;
const button = form.querySelector('button')!;

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

function render(result: ExplorerResult): void {
  const rows = [
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
      f.gradientBound === undefined ? row('Certified gradient bound', 'gradientBound', 'not certified (float32)') : row('Certified gradient bound (relative)', 'gradientBound', f.gradientBound),
    );
  }
  rows.push(row("'auto' would use", 'autoChosen', result.auto.chosen, `<span class="verdict-${result.auto.chosen}">${result.auto.chosen}</span>`));
  if (result.auto.degree !== undefined) rows.push(row("'auto' planned degree (rank)", 'autoDegree', result.auto.degree, `${result.auto.degree} (${result.auto.rank})`));
  rows.push(row('Why', 'autoReason', result.auto.reason));
  table.tBodies[0].innerHTML = rows.join('');
  table.hidden = false;
}

function params(): { params: ExplorerParams; backend: ExploreRequest['backend'] } {
  const data = new FormData(form);
  const degree = String(data.get('degree'));
  return {
    params: {
      length: Number(data.get('length')),
      d: Number(data.get('d')),
      gamma: Number(data.get('gamma')),
      degree: degree === 'auto' ? undefined : Number(degree),
      epsilon: Number(data.get('epsilon')),
      adaptation: data.get('adaptation') === 'full' ? 'full' : 'partial',
    },
    backend: data.get('backend') === 'cpu' ? 'cpu' : data.get('backend') === 'gpu' ? 'gpu' : 'wasm',
  };
}

worker.onmessage = (event: MessageEvent<ExploreMessage>) => {
  const message = event.data;
  if (message.type === 'ready') {
    const wasm = message.wasm ? `WebAssembly SIMD (${message.wasm}, float64)` : 'no WebAssembly SIMD here: the CPU (float64)';
    const gpu = message.gpu ? `the GPU (${message.gpu}, float32)` : 'no WebGPU or WebGL2 here';
    status.textContent = `Ready: computing in a Web Worker on ${wasm}; GPU: ${gpu}.`;
    button.disabled = false;
  } else if (message.type === 'stage') {
    progress.value = message.index;
    status.textContent = `Running: ${message.stage}…`;
  } else if (message.type === 'result') {
    progress.value = progress.max;
    status.textContent = `Done on ${message.result.backend}.`;
    render(message.result);
    button.disabled = false;
  } else {
    status.textContent = `Error: ${message.message}`;
    button.disabled = false;
  }
};

button.disabled = true;
form.addEventListener('submit', (event) => {
  event.preventDefault();
  button.disabled = true;
  progress.value = 0;
  worker.postMessage(params());
});
