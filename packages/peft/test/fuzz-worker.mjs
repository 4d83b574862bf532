/* global process, TextDecoder */
// The fuzz suite's loader (test/fuzz.test.ts): a worker thread that a hang or a crash cannot take
// down with the suite. For each { config, weights } it runs the built decodePeftAdapter and answers
// with a verdict: 'typedError' (an AlmoraError), 'crash' (any other exception), 'violation' (a load
// that returned something other than the file's contents, or grew memory far past the file's size)
// or 'ok'. The contents are checked against an independent reading of the file: the native
// JSON.parse of its header and a DataView over the bytes at the offsets it names.
import { parentPort } from 'node:worker_threads';
import { AlmoraError } from '@almora/tensor';
import { decodePeftAdapter } from '../dist/index.js';

const BYTES = { F64: 8, F32: 4, F16: 2, BF16: 2 };

/** A value of the file as an independent reader sees it (F16/BF16 by bit arithmetic). */
function valueAt(view, at, dtype) {
  if (dtype === 'F64') return view.getFloat64(at, true);
  if (dtype === 'F32') return view.getFloat32(at, true);
  const bits = view.getUint16(at, true);
  if (dtype === 'BF16') {
    const wide = new DataView(new ArrayBuffer(4));
    wide.setUint32(0, bits << 16);
    return wide.getFloat32(0);
  }
  const exponent = (bits >> 10) & 31;
  const fraction = bits & 1023;
  const sign = bits & 0x8000 ? -1 : 1;
  if (exponent === 31) return fraction ? Number.NaN : sign * Infinity;
  return exponent === 0 ? sign * fraction * 2 ** -24 : sign * (1024 + fraction) * 2 ** (exponent - 25);
}

/** What is wrong with a successful load, or '' when the adapter is exactly the file's. */
function inconsistency(adapter, configText, weights) {
  const config = JSON.parse(configText);
  if (adapter.config.r !== config.r || adapter.config.lora_alpha !== config.lora_alpha)
    return `r ${adapter.config.r}, lora_alpha ${adapter.config.lora_alpha}, but the file says ${config.r}, ${config.lora_alpha}`;
  const view = new DataView(weights.buffer, weights.byteOffset, weights.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(weights.subarray(8, 8 + n)));
  const keys = Object.keys(header).filter((k) => k !== '__metadata__');
  const loaded = Object.keys(adapter.modules);
  if (keys.length !== 2 * loaded.length) return `the file has ${keys.length} tensors, the load kept ${loaded.length} modules`;
  for (const module of loaded) {
    const { lora_A: a, lora_B: b } = adapter.modules[module];
    if (a.rows !== b.cols) return `${module}: lora_A has ${a.rows} rows, lora_B ${b.cols} columns`;
    for (const [which, m] of [
      ['lora_A', a],
      ['lora_B', b],
    ]) {
      const entry = header[`base_model.model.${module}.${which}.weight`];
      if (!entry) return `${module}.${which} is not in the file`;
      if (entry.shape.join() !== `${m.rows},${m.cols}`) return `${module}.${which} is ${m.rows}×${m.cols}, the file says [${entry.shape}]`;
      const start = 8 + n + entry.data_offsets[0];
      for (let i = 0; i < m.rows; i++) {
        for (let j = 0; j < m.cols; j++) {
          const expected = valueAt(view, start + (i * m.cols + j) * BYTES[entry.dtype], entry.dtype);
          const got = m.get(i, j);
          if (!Number.isFinite(got) || !Object.is(got, expected)) return `${module}.${which}(${i}, ${j}) is ${got}, the file holds ${expected}`;
        }
      }
    }
  }
  return '';
}

parentPort.on('message', ({ config, weights }) => {
  const before = process.memoryUsage();
  let adapter;
  try {
    adapter = decodePeftAdapter({ config, weights });
  } catch (error) {
    if (error instanceof AlmoraError) return parentPort.postMessage({ outcome: 'typedError', detail: error.message.slice(0, 200) });
    return parentPort.postMessage({ outcome: 'crash', detail: error instanceof Error ? `${error.name}: ${error.message.slice(0, 200)}` : String(error) });
  }
  const after = process.memoryUsage();
  const size = weights.length + config.length;
  // Typed arrays hold the tensors (at most 4× the file: F16 widened to float64); the heap's noise is
  // allowed a wide margin. A header that made the reader allocate what it claims, not what the file
  // holds, blows through both.
  const grown = Math.max(after.arrayBuffers - before.arrayBuffers - 4 * size, (after.heapUsed - before.heapUsed) / 16 - 16 * size);
  if (grown > 2 ** 20) return parentPort.postMessage({ outcome: 'violation', detail: `a ${size}-byte folder made memory grow by ${grown} bytes` });
  const wrong = inconsistency(adapter, config, weights);
  parentPort.postMessage(wrong ? { outcome: 'violation', detail: wrong } : { outcome: 'ok', detail: '' });
});
