import { InvalidArgumentError } from '@almora/tensor';

/** Element types this reader and writer support. */
export type SafetensorsDType = 'F32' | 'F64';

/** One tensor: dtype, shape, and its values in row-major order. */
export interface SafetensorsTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: Float32Array | Float64Array;
}

/** The contents of a safetensors file. */
export interface SafetensorsFile {
  tensors: Record<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

/** A file that breaks the safetensors format; the message says which rule. */
export class SafetensorsError extends InvalidArgumentError {}

const BYTES: Record<SafetensorsDType, number> = { F32: 4, F64: 8 };
const MAX_HEADER = 100 * 2 ** 20;

/**
 * Encodes tensors in the safetensors format: an 8-byte little-endian header length N, N bytes of
 * JSON header (dtype, shape, data_offsets relative to the data section; optional __metadata__ of
 * string values), padded with spaces to a multiple of 8, then the raw little-endian data. Tensors
 * are laid out in key order so the same input gives the same bytes.
 */
export function encodeSafetensors(file: SafetensorsFile): Uint8Array {
  const names = Object.keys(file.tensors).sort();
  // Null-prototype records: a tensor named "__proto__" is a key like any other, not a prototype.
  const header: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (Object.keys(file.metadata).length > 0) header.__metadata__ = file.metadata;
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__') throw new SafetensorsError('a tensor cannot be named __metadata__');
    const t = file.tensors[name];
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new SafetensorsError(`tensor ${name}: shape [${t.shape}] holds ${count} values, data has ${t.data.length}`);
    const bytes = count * BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const pad = (8 - ((8 + Buffer.byteLength(json)) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const name of names) {
    const t = file.tensors[name];
    for (let i = 0; i < t.data.length; i++) {
      if (t.dtype === 'F32') view.setFloat32(position, t.data[i], true);
      else view.setFloat64(position, t.data[i], true);
      position += BYTES[t.dtype];
    }
  }
  return out;
}

/**
 * Decodes a safetensors file, checking every rule of the format: the header length fits the file,
 * the header is a JSON object, each entry has a known dtype, a shape of non-negative integers and
 * data_offsets whose length matches shape × dtype size, the tensors tile the data section exactly
 * (no gaps, no overlaps, nothing after), and __metadata__ holds only strings.
 */
export function decodeSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (bytes.length < 8) throw new SafetensorsError(`file is ${bytes.length} bytes; a safetensors file starts with an 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER, bytes.length - 8))) {
    throw new SafetensorsError(`header length ${headerLength} exceeds the ${bytes.length - 8} bytes after it (truncated or not safetensors)`);
  }
  const n = Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (error) {
    throw new SafetensorsError(`header is not valid UTF-8 JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new SafetensorsError('header must be a JSON object');
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries: [string, SafetensorsDType, number[], number, number][] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SafetensorsError('__metadata__ must be an object');
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw new SafetensorsError(`__metadata__.${k} must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof entry !== 'object' || entry === null) throw new SafetensorsError(`tensor ${name}: entry must be an object`);
    if (entry.dtype !== 'F32' && entry.dtype !== 'F64') {
      // Only a string is printed: a list nested deep enough would overflow JSON.stringify's stack.
      const dtype = typeof entry.dtype === 'string' ? JSON.stringify(entry.dtype.slice(0, 40)) : `of type ${Array.isArray(entry.dtype) ? 'list' : entry.dtype === null ? 'null' : typeof entry.dtype}`;
      throw new SafetensorsError(`tensor ${name}: unsupported dtype ${dtype} (this reader handles F32 and F64)`);
    }
    if (!Array.isArray(entry.shape) || !entry.shape.every((s) => Number.isInteger(s) && s >= 0)) throw new SafetensorsError(`tensor ${name}: shape must be a list of non-negative integers`);
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0) || offsets[1] < offsets[0]) {
      throw new SafetensorsError(`tensor ${name}: data_offsets must be [begin, end] with 0 ≤ begin ≤ end`);
    }
    const count = (entry.shape as number[]).reduce((a, b) => a * b, 1);
    if (offsets[1] - offsets[0] !== count * BYTES[entry.dtype]) {
      throw new SafetensorsError(`tensor ${name}: shape [${entry.shape}] of ${entry.dtype} needs ${count * BYTES[entry.dtype]} bytes, data_offsets span ${offsets[1] - offsets[0]}`);
    }
    if (offsets[1] > dataLength) throw new SafetensorsError(`tensor ${name}: data_offsets end at ${offsets[1]} but the data section has ${dataLength} bytes (truncated file?)`);
    entries.push([name, entry.dtype, entry.shape as number[], offsets[0], offsets[1]]);
  }
  const sorted = [...entries].sort((a, b) => a[3] - b[3]);
  let expected = 0;
  for (const [name, , , begin, end] of sorted) {
    if (begin !== expected) throw new SafetensorsError(`tensor ${name}: starts at ${begin}, expected ${expected} — tensors must tile the data section without gaps or overlaps`);
    expected = end;
  }
  if (expected !== dataLength) throw new SafetensorsError(`the data section has ${dataLength - expected} bytes after the last tensor`);
  const tensors: Record<string, SafetensorsTensor> = Object.create(null) as Record<string, SafetensorsTensor>;
  for (const [name, dtype, shape, begin] of entries) {
    const count = shape.reduce((a, b) => a * b, 1);
    const data = dtype === 'F32' ? new Float32Array(count) : new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const at = dataStart + begin + i * BYTES[dtype];
      data[i] = dtype === 'F32' ? view.getFloat32(at, true) : view.getFloat64(at, true);
    }
    tensors[name] = { dtype, shape, data };
  }
  return { tensors, metadata };
}
