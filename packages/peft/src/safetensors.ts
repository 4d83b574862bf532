import { NonFiniteError } from '@almora/tensor';
import { SafetensorsError } from './errors.js';
import { BF16, decodeBits, encodeBits, F16 } from './half.js';
import { isJsonObject, jsonKind, parseJson, type JsonValue } from './json.js';

/** The element types read and written: float64, float32, IEEE half and bfloat16. */
export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16';

/**
 * One tensor: the dtype it is (or will be) stored in, its shape, and its values in row-major
 * order. Decoding gives a Float64Array for F64 and a Float32Array for the others (every F16 and
 * BF16 value is a float32, so nothing is rounded); encoding rounds `data` to `dtype`.
 */
export interface SafetensorsTensor {
  /** Element type in the file. */
  dtype: SafetensorsDType;
  /** Dimensions, outermost first (torch's order); `[]` is a scalar. */
  shape: number[];
  /** Values in row-major order; length = product of `shape`. */
  data: Float64Array | Float32Array;
}

/** The contents of a safetensors file. Both records have a null prototype: any name is a plain key. */
export interface SafetensorsFile {
  /** Tensors by name. */
  tensors: Record<string, SafetensorsTensor>;
  /** The `__metadata__` strings (transformers wants `{ format: 'pt' }`). */
  metadata: Record<string, string>;
}

/** Options of {@link decodeSafetensors} and {@link encodeSafetensors}. */
export interface SafetensorsOptions {
  /**
   * Accept NaN and ±Infinity in tensor values (the format allows them). Default false: a
   * non-finite value is a `NonFiniteError` naming the tensor and the index, since in weights it
   * means a broken file or a diverged run.
   */
  allowNonFinite?: boolean;
}

const BYTES: Record<SafetensorsDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };
/** The reference implementation's limit on the header (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;
const ENTRY_FIELDS = new Set(['dtype', 'shape', 'data_offsets']);

function isDType(value: JsonValue | undefined): value is SafetensorsDType {
  return typeof value === 'string' && Object.hasOwn(BYTES, value);
}

/** Product of `shape`, refusing one past 2^53 (where integer arithmetic stops being exact). */
function elementCount(shape: readonly number[], fail: (message: string) => Error): number {
  let count = 1;
  for (const n of shape) count *= n;
  if (!Number.isSafeInteger(count)) throw fail(`shape [${shape.join(', ')}] has more than 2^53 elements`);
  return count;
}

function nonFinite(name: string, index: number, value: number): NonFiniteError {
  return new NonFiniteError(`tensor ${JSON.stringify(name)}: value ${index} is ${value} (pass allowNonFinite to accept NaN and ±Infinity)`);
}

/**
 * Encodes tensors in the safetensors format: an 8-byte little-endian header length N, N bytes of
 * JSON header (each tensor's dtype, shape and data_offsets relative to the data section; the
 * optional `__metadata__` of strings) padded with spaces so the data starts 8-byte aligned, then
 * the little-endian values. Tensors are laid out in name order, so equal input gives equal bytes.
 * F16 and BF16 round to nearest, ties to even; a value that overflows its dtype, or is NaN or
 * ±Infinity, is a `NonFiniteError` unless `allowNonFinite`.
 */
export function encodeSafetensors(file: SafetensorsFile, options: SafetensorsOptions = {}): Uint8Array {
  const names = Object.keys(file.tensors).sort();
  const header = Object.create(null) as Record<string, unknown>;
  const metadata = Object.entries(file.metadata);
  for (const [key, value] of metadata) if (typeof value !== 'string') throw new SafetensorsError(`__metadata__.${key} must be a string, got ${typeof value}`);
  if (metadata.length > 0) header.__metadata__ = Object.assign(Object.create(null) as Record<string, string>, file.metadata);
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__') throw new SafetensorsError('a tensor cannot be named __metadata__');
    const t = file.tensors[name];
    if (!isDType(t.dtype)) throw new SafetensorsError(`tensor ${JSON.stringify(name)}: dtype ${String(t.dtype)} is not one of F64, F32, F16, BF16`);
    const fail = (message: string) => new SafetensorsError(`tensor ${JSON.stringify(name)}: ${message}`);
    if (!t.shape.every((n) => Number.isSafeInteger(n) && n >= 0)) throw fail(`shape [${t.shape.join(', ')}] must hold non-negative integers`);
    const count = elementCount(t.shape, fail);
    if (count !== t.data.length) throw fail(`shape [${t.shape.join(', ')}] holds ${count} values, data has ${t.data.length}`);
    const bytes = count * BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const headerLength = new TextEncoder().encode(json).length;
  json += ' '.repeat((8 - (headerLength % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const { dtype, data } = file.tensors[name];
    for (let i = 0; i < data.length; i++) {
      const x = data[i];
      if (dtype === 'F64') view.setFloat64(at, x, true);
      else if (dtype === 'F32') view.setFloat32(at, x, true);
      else view.setUint16(at, encodeBits(x, dtype === 'F16' ? F16 : BF16), true);
      if (!options.allowNonFinite) {
        const stored = dtype === 'F64' ? x : dtype === 'F32' ? view.getFloat32(at, true) : decodeBits(view.getUint16(at, true), dtype === 'F16' ? F16 : BF16);
        if (!Number.isFinite(stored))
          throw new NonFiniteError(`tensor ${JSON.stringify(name)}: value ${i} (${x}) is ${stored} as ${dtype} (pass allowNonFinite to write it anyway)`);
      }
      at += BYTES[dtype];
    }
  }
  return out;
}

interface Entry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

/** One header entry, checked against the data section's length; every number is checked before use. */
function checkEntry(name: string, value: JsonValue, dataLength: number): Entry {
  const fail = (message: string) => new SafetensorsError(`tensor ${JSON.stringify(name.slice(0, 200))}: ${message}`);
  if (!isJsonObject(value)) throw fail(`entry must be an object, got ${jsonKind(value)}`);
  const extra = Object.keys(value).find((key) => !ENTRY_FIELDS.has(key));
  if (extra !== undefined) throw fail(`unknown entry field ${JSON.stringify(extra.slice(0, 80))} (an entry has dtype, shape and data_offsets)`);
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isDType(dtype)) throw fail(`unsupported dtype ${jsonKind(dtype)} (this reader handles F64, F32, F16 and BF16)`);
  if (!Array.isArray(shape) || !shape.every((n): n is number => Number.isSafeInteger(n) && (n as number) >= 0))
    throw fail(`shape must be a list of non-negative integers, got ${jsonKind(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((n): n is number => Number.isSafeInteger(n) && (n as number) >= 0)) {
    throw fail(`data_offsets must be [begin, end] with non-negative integers, got ${jsonKind(offsets)}`);
  }
  const [begin, end] = offsets;
  if (end < begin) throw fail(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataLength) throw fail(`data_offsets end at ${end} but the data section has ${dataLength} bytes (truncated file?)`);
  const bytes = elementCount(shape, fail) * BYTES[dtype];
  if (end - begin !== bytes) throw fail(`shape [${shape.join(', ')}] of ${dtype} needs ${bytes} bytes, data_offsets span ${end - begin}`);
  return { name, dtype, shape, begin, end };
}

/** The values of one tensor, decoded from its bytes; F64 to a Float64Array, the others to a Float32Array. */
function readValues(view: DataView, at: number, entry: Entry, allowNonFinite: boolean): Float64Array | Float32Array {
  const count = (entry.end - entry.begin) / BYTES[entry.dtype];
  const data = entry.dtype === 'F64' ? new Float64Array(count) : new Float32Array(count);
  const format = entry.dtype === 'F16' ? F16 : BF16;
  for (let i = 0; i < count; i++) {
    if (entry.dtype === 'F64') data[i] = view.getFloat64(at + 8 * i, true);
    else if (entry.dtype === 'F32') data[i] = view.getFloat32(at + 4 * i, true);
    else data[i] = decodeBits(view.getUint16(at + 2 * i, true), format);
    if (!allowNonFinite && !Number.isFinite(data[i])) throw nonFinite(entry.name, i, data[i]);
  }
  return data;
}

/**
 * Decodes a safetensors file, treating its bytes as hostile. Before anything is allocated the
 * header length is checked against the 100 MB limit and the file size; the header must be UTF-8
 * JSON starting with `{`, with no duplicate keys and no nesting deeper than 64, parsed into
 * null-prototype records; each entry has exactly dtype, shape and data_offsets, a known dtype, a
 * shape of non-negative integers whose product stays below 2^53, and offsets spanning exactly
 * product(shape) × dtype size bytes; the tensors tile the data section exactly (no gap, no overlap,
 * nothing after the last); `__metadata__` maps strings to strings. Only then are the values
 * decoded, into typed arrays of at most twice the data section's size (F16 and BF16 widen to
 * float32); no size claimed by the header is allocated before it is checked against the bytes
 * that are there. Every failure is a {@link SafetensorsError} (or a `NonFiniteError`, see
 * {@link SafetensorsOptions}).
 */
export function decodeSafetensors(bytes: Uint8Array, options: SafetensorsOptions = {}): SafetensorsFile {
  if (bytes.length < 8) throw new SafetensorsError(`file is ${bytes.length} bytes; a safetensors file starts with an 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declared = view.getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`header length ${declared} exceeds the format's limit of ${MAX_HEADER_BYTES} bytes`);
  if (declared > BigInt(bytes.length - 8))
    throw new SafetensorsError(`header length ${declared} exceeds the ${bytes.length - 8} bytes after it (truncated or not safetensors)`);
  const n = Number(declared);
  if (n === 0 || bytes[8] !== 0x7b) throw new SafetensorsError('header must be a JSON object starting with "{"');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    throw new SafetensorsError('header is not valid UTF-8');
  }
  const header = parseJson(text, (message) => new SafetensorsError(`header is not valid JSON: ${message}`));
  if (!isJsonObject(header)) throw new SafetensorsError('header must be a JSON object');
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const metadata = Object.create(null) as Record<string, string>;
  const entries: Entry[] = [];
  for (const name of Object.keys(header)) {
    const value = header[name];
    if (name === '__metadata__') {
      if (!isJsonObject(value)) throw new SafetensorsError(`__metadata__ must be an object of strings, got ${jsonKind(value)}`);
      for (const key of Object.keys(value)) {
        const text = value[key];
        if (typeof text !== 'string') throw new SafetensorsError(`__metadata__.${key.slice(0, 80)} must be a string, got ${jsonKind(text)}`);
        metadata[key] = text;
      }
      continue;
    }
    entries.push(checkEntry(name, value, dataLength));
  }
  // Sorted by (begin, end), each tensor must start where the one before ended.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const e of sorted) {
    if (e.begin !== expected)
      throw new SafetensorsError(
        `tensor ${JSON.stringify(e.name.slice(0, 200))}: starts at byte ${e.begin}, expected ${expected} — tensors must tile the data section without gaps or overlaps`,
      );
    expected = e.end;
  }
  if (expected !== dataLength) throw new SafetensorsError(`the data section has ${dataLength - expected} bytes after the last tensor`);
  const tensors = Object.create(null) as Record<string, SafetensorsTensor>;
  for (const e of entries)
    tensors[e.name] = { dtype: e.dtype, shape: e.shape, data: readValues(view, dataStart + e.begin, e, options.allowNonFinite ?? false) };
  return { tensors, metadata };
}
