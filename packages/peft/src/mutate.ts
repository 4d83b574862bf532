/**
 * Mutations of safetensors files and JSON documents for fuzzing a loader: what a corrupt download,
 * a truncated write or a hostile file can hold. Seeded by an `Rng`, so any case can be replayed.
 */
import type { Rng } from '@almora/tensor';

const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.int(items.length)];

/** A mutated file and what was done to it, for the report. */
export interface Mutation {
  /** The mutated file. */
  bytes: Uint8Array;
  /** What was done, in a few words (for a failure report). */
  what: string;
}

/** A JSON list nested `depth` levels deep: deep enough to overflow any recursive reader or printer. */
function deepNesting(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

/** A JSON object nested `depth` levels deep. */
function deepObject(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** Whole documents that are valid JSON (or nearly) but not what any config reader expects. */
export const HOSTILE_JSON_DOCUMENTS: readonly string[] = [
  'null',
  '[]',
  '"adapter"',
  '0',
  'true',
  '{}',
  '',
  '{',
  '\uFEFF{}',
  '{"__proto__": {"r": 2}}',
  '{"constructor": {"prototype": {"r": 2}}}',
  deepNesting(100_000),
  deepObject(100_000),
  `{"a": ${deepNesting(100_000)}}`,
];

/** Values of the wrong type or range for any numeric or list field. */
export const HOSTILE_JSON_VALUES: readonly string[] = [
  'null',
  '"2"',
  '0',
  '-1',
  '1.5',
  '-0',
  '35184372088832',
  '1e308',
  '1e999',
  '-1e999',
  '5e-324',
  '[]',
  '[2]',
  '{}',
  'true',
  '"__proto__"',
  deepNesting(100_000),
];

/**
 * Stands for a list nested 10^5 deep in a header object: JSON.stringify cannot write one that deep,
 * so the text is put in after stringifying (see {@link headerText}).
 */
const DEEP = '\u0000deep';

function headerText(header: Record<string, unknown>): string {
  return JSON.stringify(header).replaceAll(JSON.stringify(DEEP), deepNesting(100_000));
}

const u64 = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

function withHeader(header: string, data: Uint8Array, lengthField?: bigint): Uint8Array {
  const text = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + text.length + data.length);
  u64(out).setBigUint64(0, lengthField ?? BigInt(text.length), true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

/** The header of a file that still has a well-framed JSON-object header, else undefined. */
function parseHeader(file: Uint8Array): Record<string, unknown> | undefined {
  if (file.length < 8) return undefined;
  const length = u64(file).getBigUint64(0, true);
  if (length > BigInt(file.length - 8)) return undefined;
  try {
    const header: unknown = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + Number(length))));
    // A header a mutation nested 10^5 deep parses but cannot be written back: byte-level edits only.
    JSON.stringify(header);
    return typeof header === 'object' && header !== null && !Array.isArray(header) ? (header as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Edits of one header entry `{dtype, shape, data_offsets}`, each breaking one rule or bending it. */
function editEntry(rng: Rng, entry: Record<string, unknown>, others: Record<string, unknown>[]): string {
  const shape = Array.isArray(entry.shape) ? [...(entry.shape as unknown[])] : [];
  const offsets = Array.isArray(entry.data_offsets) ? (entry.data_offsets as number[]) : [0, 0];
  const [begin, end] = offsets;
  const choice = rng.int(6);
  if (choice === 0) {
    const value = pick(rng, [0, 2 ** 45, 2 ** 53, 1.5, -1, '2', null, 1e308, DEEP]);
    shape[rng.int(Math.max(1, shape.length))] = value;
    entry.shape = shape;
    return `shape → [${shape.map((v) => (v === DEEP ? 'a deep list' : String(v)))}]`;
  }
  if (choice === 1) {
    entry.shape = pick(rng, [[], [shape.reduce<number>((a, b) => a * Number(b), 1)], [...shape, 1], [...shape].reverse(), null, '2,3', [[2]]]);
    return `shape → ${JSON.stringify(entry.shape)}`;
  }
  if (choice === 2) {
    const other = others.length > 0 ? (pick(rng, others).data_offsets as number[]) : [0, 0];
    entry.data_offsets = pick(rng, [
      [begin + 4, end + 4],
      [begin - 4, end - 4],
      [end, begin],
      other,
      [0, end],
      [begin, end + 2 ** 40],
      [begin + 0.5, end + 0.5],
      [begin, end, end],
      [String(begin), end],
      [2 ** 53, 2 ** 53 + end - begin],
      null,
    ]);
    return `data_offsets → ${JSON.stringify(entry.data_offsets)}`;
  }
  if (choice === 3) {
    entry.dtype = pick(rng, ['F16', 'BF16', 'I32', 'f32', 'F32 ', '', null, 7, entry.dtype === 'F32' ? 'F64' : 'F32', DEEP]);
    return `dtype → ${entry.dtype === DEEP ? 'a list nested 10^5 deep' : JSON.stringify(entry.dtype)}`;
  }
  if (choice === 4) {
    // Undefined is left out by JSON.stringify: the field is gone from the header text.
    entry[pick(rng, ['dtype', 'shape', 'data_offsets'])] = undefined;
    return 'an entry field deleted';
  }
  entry.extra = pick(rng, [1, { dtype: 'F32' }, DEEP]);
  return 'an extra entry field';
}

/** Structural edits of a header object: rename, drop, duplicate, poison keys, metadata. */
function editHeader(rng: Rng, header: Record<string, unknown>, names: string[]): { text: string; what: string } {
  const name = names.length > 0 ? pick(rng, names) : 'x';
  const choice = rng.int(9) - 2;
  if (choice <= 0 && names.length > 0) {
    const entries = names.filter((n) => n !== name).map((n) => header[n] as Record<string, unknown>);
    const what = editEntry(rng, header[name] as Record<string, unknown>, entries);
    return { text: headerText(header), what: `${name}: ${what}` };
  }
  if (choice === 1) {
    header[name] = undefined;
    return { text: JSON.stringify(header), what: `entry ${name} deleted` };
  }
  if (choice === 2) {
    const target = pick(rng, ['__proto__', 'constructor', 'toString', '__metadata__', ...names]);
    const value = JSON.stringify(header[name] ?? {});
    // Text-level, so a duplicate key really is duplicated and "__proto__" is a key, not a prototype.
    const text = JSON.stringify(header).replace(/}$/, `,${JSON.stringify(target)}:${value}}`);
    return { text, what: `key ${target} added with ${name}'s entry` };
  }
  if (choice === 3) {
    const renamed = pick(rng, ['__proto__', 'constructor', `${name}.`, name.toUpperCase(), ...names]);
    const text = JSON.stringify(header).replace(JSON.stringify(name), JSON.stringify(renamed));
    return { text, what: `${name} renamed ${renamed}` };
  }
  if (choice === 4) {
    const metadata = pick(rng, ['5', '[]', 'null', '{"a": 1}', '{"__proto__": "x"}', `{"a": ${deepNesting(100_000)}}`, '"pt"']);
    const text = JSON.stringify(header).replace(/^\{/, `{"__metadata__":${metadata},`);
    return { text, what: `__metadata__ → ${metadata.slice(0, 40)}` };
  }
  if (choice === 5) {
    const whole = pick(rng, HOSTILE_JSON_DOCUMENTS);
    return { text: whole, what: `header → ${whole.slice(0, 40)}` };
  }
  const tail = pick(rng, ['   ', 'xyz', '\u0000', '\uFFFD', '}']);
  return { text: JSON.stringify(header) + tail, what: `header followed by ${JSON.stringify(tail)}` };
}

/**
 * One random mutation of a valid safetensors file: a bit flip or byte overwrite (header or data),
 * truncation, extension, a bad header-length field, or an edit of the header JSON (shapes,
 * offsets, dtypes, duplicate and poison keys, metadata) re-framed with a matching length field.
 */
export function mutateSafetensors(rng: Rng, file: Uint8Array): Mutation {
  const header = parseHeader(file);
  const headerLength = header ? Number(u64(file).getBigUint64(0, true)) : Math.max(0, file.length - 8);
  const bytes = file.slice();
  // A file already mutated past parsing (a second mutation in a row) gets byte-level ones only;
  // one shorter than the length field can only grow.
  const choice = file.length < 8 ? 3 : rng.int(header ? 9 : 5);
  if (choice === 0) {
    const at = rng.int(bytes.length);
    bytes[at] ^= 1 << rng.int(8);
    return { bytes, what: `bit flip at byte ${at} of ${bytes.length}` };
  }
  if (choice === 1 && header && rng.next() < 0.3) {
    // 8 bytes of 0xff read as NaN in either dtype at any 4-aligned place of the data section.
    const at = 8 + headerLength + 4 * rng.int(Math.max(1, Math.floor((bytes.length - 8 - headerLength - 4) / 4)));
    bytes.fill(0xff, at, at + 8);
    return { bytes, what: `NaN written at byte ${at} (data)` };
  }
  if (choice === 1) {
    const inHeader = rng.next() < 0.5;
    const at = Math.min(
      bytes.length - 1,
      inHeader ? 8 + rng.int(Math.max(1, headerLength)) : 8 + headerLength + rng.int(Math.max(1, bytes.length - 8 - headerLength)),
    );
    const count = 1 + rng.int(8);
    for (let i = at; i < Math.min(bytes.length, at + count); i++) bytes[i] = pick(rng, [0, 0xff, 0x7f, 0x80, 0x22, 0x7b, 0x7d, rng.int(256)]);
    return { bytes, what: `${count} bytes overwritten at ${at} (${inHeader ? 'header' : 'data'})` };
  }
  if (choice === 2) {
    const length = rng.int(bytes.length);
    return { bytes: bytes.slice(0, length), what: `truncated to ${length} of ${bytes.length} bytes` };
  }
  if (choice === 3) {
    const extra = Uint8Array.from({ length: 1 + rng.int(64) }, () => rng.int(256));
    const out = new Uint8Array(bytes.length + extra.length);
    out.set(bytes);
    out.set(extra, bytes.length);
    return { bytes: out, what: `extended by ${extra.length} bytes` };
  }
  if (choice === 4) {
    const field = pick(rng, [
      2n ** 64n - 1n,
      2n ** 53n,
      2n ** 31n,
      0n,
      BigInt(bytes.length),
      BigInt(bytes.length - 7),
      BigInt(headerLength - 1),
      BigInt(headerLength + 1),
    ]);
    u64(bytes).setBigUint64(0, field, true);
    return { bytes, what: `header length field → ${field}` };
  }
  if (!header) throw new Error('unreachable: header edits are drawn only for a parsed header');
  const data = file.subarray(8 + headerLength);
  const names = Object.keys(header).filter((n) => n !== '__metadata__');
  const edit = editHeader(rng, header, names);
  const lengthOff = rng.next() < 0.1;
  const framed = withHeader(edit.text, data, lengthOff ? BigInt(new TextEncoder().encode(edit.text).length + 8) : undefined);
  return { bytes: framed, what: `header: ${edit.what}${lengthOff ? ' (length field 8 too long)' : ''}` };
}
