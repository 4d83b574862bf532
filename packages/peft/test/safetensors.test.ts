import { NonFiniteError } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { BF16, decodeBits, encodeBits, F16 } from '../src/half.js';
import { decodeSafetensors, encodeSafetensors, SafetensorsError, type SafetensorsDType, type SafetensorsFile } from '../src/index.js';
import { MAX_HEADER_BYTES } from '../src/safetensors.js';

/** A safetensors file built by hand: header length, header bytes, data bytes. */
function handBuilt(header: string, data: number[] | Uint8Array, lengthField?: bigint): Uint8Array {
  const headerBytes = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}

/** A one-tensor file of 16-bit patterns (little-endian). */
function halfFile(dtype: 'F16' | 'BF16', bits: number[]): Uint8Array {
  const data = new Uint8Array(2 * bits.length);
  bits.forEach((b, i) => new DataView(data.buffer).setUint16(2 * i, b, true));
  return handBuilt(JSON.stringify({ t: { dtype, shape: [bits.length], data_offsets: [0, data.length] } }), data);
}

describe('safetensors layout', () => {
  it('reads a file built byte by byte', () => {
    // 1.0f = 00 00 80 3f, -2.0f = 00 00 00 c0 (little-endian IEEE 754).
    const file = decodeSafetensors(
      handBuilt('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}}', [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]),
    );
    expect({ ...file.metadata }).toEqual({ format: 'pt' });
    expect(file.tensors.w.shape).toEqual([2]);
    expect(file.tensors.w.data).toBeInstanceOf(Float32Array);
    expect(Array.from(file.tensors.w.data)).toEqual([1, -2]);
  });

  it('writes the exact bytes the format prescribes, the data 8-byte aligned', () => {
    const bytes = encodeSafetensors({ tensors: { x: { dtype: 'F64', shape: [1, 1], data: new Float64Array([0.5]) } }, metadata: {} });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    expect(header.trimEnd()).toBe('{"x":{"dtype":"F64","shape":[1,1],"data_offsets":[0,8]}}');
    // 0.5 as float64 little-endian: 00 00 00 00 00 00 e0 3f
    expect(Array.from(bytes.subarray(8 + headerLength))).toEqual([0, 0, 0, 0, 0, 0, 0xe0, 0x3f]);
  });

  const DTYPES: SafetensorsDType[] = ['F64', 'F32', 'F16', 'BF16'];
  it.each(DTYPES)('round-trips %s: values the dtype holds come back exactly, scalars and empty tensors included', (dtype) => {
    // Each value is exactly representable in all four dtypes, subnormal F16 included (2^-24).
    const values = [0, -0, 1, -2, 0.5, 0.375, 96, -6.5, 2 ** -24, 2 ** -14];
    const file: SafetensorsFile = {
      tensors: {
        m: { dtype, shape: [2, 5], data: Float64Array.from(values) },
        s: { dtype, shape: [], data: Float64Array.from([3]) },
        e: { dtype, shape: [0, 4], data: new Float64Array(0) },
      },
      metadata: { format: 'pt', note: 'almora' },
    };
    const back = decodeSafetensors(encodeSafetensors(file));
    expect({ ...back.metadata }).toEqual(file.metadata);
    for (const name of ['m', 's', 'e']) {
      expect(back.tensors[name].dtype).toBe(dtype);
      expect(back.tensors[name].shape).toEqual(file.tensors[name].shape);
      expect(back.tensors[name].data).toBeInstanceOf(dtype === 'F64' ? Float64Array : Float32Array);
      expect(Array.from(back.tensors[name].data)).toEqual(Array.from(file.tensors[name].data));
    }
  });

  it('rounds on write as the dtype does: F32 by Math.fround, F16 and BF16 to nearest with ties to even', () => {
    const x = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, 65519, 0.1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, Math.PI];
    const through = (dtype: SafetensorsDType) =>
      Array.from(
        decodeSafetensors(encodeSafetensors({ tensors: { t: { dtype, shape: [x.length], data: Float64Array.from(x) } }, metadata: {} })).tensors.t.data,
      );
    expect(through('F32')).toEqual(x.map(Math.fround));
    // Ties go to the even neighbour: 1+2^-11 → 1, 1+3·2^-11 → 1+2^-9, 2^-25 → 0, 3·2^-25 → 2^-23.
    expect(through('F16')).toEqual([1, 1 + 2 ** -9, 0, 2 ** -23, 65504, 0.0999755859375, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.140625]);
    expect(through('BF16')).toEqual([1, 1, 2 ** -25, 3 * 2 ** -25, 65536, 0.10009765625, 1, 1 + 2 ** -6, 3.140625]);
  });

  it('keeps tensors and metadata named __proto__ or constructor as plain keys, and never touches Object.prototype', () => {
    const tensors = Object.create(null) as SafetensorsFile['tensors'];
    tensors['__proto__'] = { dtype: 'F64', shape: [2], data: Float64Array.from([1, 2]) };
    tensors['constructor'] = { dtype: 'F64', shape: [1], data: Float64Array.from([3]) };
    const metadata = Object.create(null) as Record<string, string>;
    metadata['__proto__'] = 'kept';
    const back = decodeSafetensors(encodeSafetensors({ tensors, metadata }));
    expect(Object.keys(back.tensors).sort()).toEqual(['__proto__', 'constructor']);
    expect(Array.from(back.tensors['__proto__'].data)).toEqual([1, 2]);
    expect(back.metadata['__proto__']).toBe('kept');
    expect(Object.getPrototypeOf(back.tensors)).toBeNull();
    const polluting = handBuilt('{"__metadata__":{"__proto__":"x"},"__proto__":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}', []);
    decodeSafetensors(polluting);
    expect(({} as Record<string, unknown>).dtype).toBeUndefined();
  });
});

describe('F16 and BF16 decoding against hand-computed values', () => {
  // [bits, value]: ±0, ±1, the extremes of the normal range, subnormals, and a few in between.
  const F16_CASES: [number, number][] = [
    [0x0000, 0],
    [0x8000, -0],
    [0x3c00, 1],
    [0xc000, -2],
    [0x3555, 0.333251953125],
    [0x7bff, 65504],
    [0x0400, 2 ** -14],
    [0x0001, 2 ** -24],
    [0x03ff, 1023 * 2 ** -24],
    [0x8001, -(2 ** -24)],
    [0x4248, 3.140625],
  ];
  const BF16_CASES: [number, number][] = [
    [0x0000, 0],
    [0x8000, -0],
    [0x3f80, 1],
    [0xc000, -2],
    [0x4049, 3.140625],
    [0x7f7f, 3.3895313892515355e38],
    [0x0080, 2 ** -126],
    [0x0001, 2 ** -133],
    [0x007f, 127 * 2 ** -133],
    [0x3e80, 0.25],
  ];

  for (const [dtype, cases] of [
    ['F16', F16_CASES],
    ['BF16', BF16_CASES],
  ] as const) {
    it(`${dtype}: every hand-computed value, subnormals and ±0 included`, () => {
      const file = decodeSafetensors(
        halfFile(
          dtype,
          cases.map(([bits]) => bits),
        ),
      );
      const got = Array.from(file.tensors.t.data);
      cases.forEach(([bits, value], i) => expect(Object.is(got[i], value), `${bits.toString(16)} → ${got[i]}, expected ${value}`).toBe(true));
    });

    it(`${dtype}: ±Infinity and NaN are a NonFiniteError naming the tensor and index, unless allowNonFinite`, () => {
      const specials = dtype === 'F16' ? [0x3c00, 0x7c00, 0xfc00, 0x7e00] : [0x3f80, 0x7f80, 0xff80, 0x7fc0];
      const bytes = halfFile(dtype, specials);
      expect(() => decodeSafetensors(bytes)).toThrow(NonFiniteError);
      expect(() => decodeSafetensors(bytes)).toThrow(/tensor "t": value 1 is Infinity/);
      const allowed = Array.from(decodeSafetensors(bytes, { allowNonFinite: true }).tensors.t.data);
      expect(allowed.slice(0, 3)).toEqual([1, Infinity, -Infinity]);
      expect(allowed[3]).toBeNaN();
    });

    it(`${dtype}: all 65,536 bit patterns decode, and encode back to the same pattern (NaNs to the quiet NaN)`, () => {
      const format = dtype === 'F16' ? F16 : BF16;
      const quietNaN = dtype === 'F16' ? 0x7e00 : 0x7fc0;
      for (let bits = 0; bits < 0x10000; bits++) {
        const value = decodeBits(bits, format);
        const back = encodeBits(value, format);
        if (Number.isNaN(value)) expect(back & 0x7fff).toBe(quietNaN);
        else if (back !== bits) expect.fail(`${dtype} ${bits.toString(16)} → ${value} → ${back.toString(16)}`);
      }
    });
  }

  it('encoding overflows to Infinity exactly where IEEE rounding says, and writing one is refused unless allowed', () => {
    expect(decodeBits(encodeBits(65519.99, F16), F16)).toBe(65504);
    expect(decodeBits(encodeBits(65520, F16), F16)).toBe(Infinity);
    expect(decodeBits(encodeBits(-1e6, F16), F16)).toBe(-Infinity);
    // BF16's largest finite value is (2 − 2^-7)·2^127; from (2 − 2^-8)·2^127 up, the nearest is Infinity.
    expect(decodeBits(encodeBits(3.39e38, BF16), BF16)).toBe(3.3895313892515355e38);
    expect(decodeBits(encodeBits((2 - 2 ** -8) * 2 ** 127, BF16), BF16)).toBe(Infinity);
    const big = { tensors: { t: { dtype: 'F16' as const, shape: [1], data: Float64Array.from([70000]) } }, metadata: {} };
    expect(() => encodeSafetensors(big)).toThrow(NonFiniteError);
    expect(() => encodeSafetensors(big)).toThrow(/value 0 \(70000\) is Infinity as F16/);
    expect(Array.from(decodeSafetensors(encodeSafetensors(big, { allowNonFinite: true }), { allowNonFinite: true }).tensors.t.data)).toEqual([Infinity]);
  });
});

describe('malformed files are typed errors, checked before anything is allocated', () => {
  const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
  const f32 = (shape: number[], offsets: number[]) => `{"w":{"dtype":"F32","shape":${JSON.stringify(shape)},"data_offsets":${JSON.stringify(offsets)}}}`;
  const cases: [string, Uint8Array, RegExp][] = [
    ['too short for a header length', new Uint8Array(4), /8-byte header length/],
    ['a header length past the end', handBuilt('{}', [], 200n), /exceeds the 2 bytes/],
    ['a header length past the format limit (2^63), before reading it', handBuilt('{}', [], 2n ** 63n), /limit of 100000000/],
    ['a header length of 2^64 − 1', handBuilt('{}', [], 2n ** 64n - 1n), /limit/],
    ['a header that does not start with {', handBuilt(' {}', []), /starting with "\{"/],
    ['a header with a byte-order mark', handBuilt('\uFEFF{}', []), /starting with "\{"/],
    ['a header that is not UTF-8', handBuilt('{"w":"', [0xff, 0xfe, 0x22, 0x7d], 8n), /not valid UTF-8/],
    ['a header that is not JSON', handBuilt('{"w":', []), /not valid JSON/],
    ['a header with text after the object', handBuilt('{}x', []), /text after the JSON value/],
    ['a header with a duplicate key', handBuilt(`{"w":${f32([1], [0, 4]).slice(5, -1)},"w":${f32([1], [0, 4]).slice(5, -1)}}`, [0, 0, 0, 0]), /appears twice/],
    ['a header nested 10^5 deep', handBuilt(`{"w":${deep}}`, []), /nested deeper than 64/],
    ['a dtype nested 10^5 deep', handBuilt(`{"w":{"dtype":${deep},"shape":[1],"data_offsets":[0,4]}}`, [0, 0, 0, 0]), /nested deeper than 64/],
    ['an unknown dtype', handBuilt('{"w":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}', [1]), /unsupported dtype the string "I8"/],
    ['an unknown entry field', handBuilt('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"stride":[1]}}', [0, 0, 0, 0]), /unknown entry field "stride"/],
    ['a negative dimension', handBuilt(f32([-1], [0, 4]), [0, 0, 0, 0]), /non-negative integers/],
    ['a fractional dimension', handBuilt(f32([1.5], [0, 4]), [0, 0, 0, 0]), /non-negative integers/],
    ['a shape whose product overflows 2^53', handBuilt(f32([2 ** 30, 2 ** 30, 2 ** 30], [0, 4]), [0, 0, 0, 0]), /more than 2\^53 elements/],
    ['offsets beyond 2^53', handBuilt(f32([1], [2 ** 53, 2 ** 53 + 4]), [0, 0, 0, 0]), /data_offsets must be/],
    ['offsets that end before they begin', handBuilt(f32([0], [4, 0]), [0, 0, 0, 0]), /end before they begin/],
    ['a shape that disagrees with the offsets', handBuilt(f32([2], [0, 4]), [0, 0, 0, 0]), /needs 8 bytes, data_offsets span 4/],
    ['a truncated data section', handBuilt(f32([2], [0, 8]), [0, 0, 0, 0]), /truncated/],
    ['a huge claimed shape on a tiny file', handBuilt(f32([2 ** 20, 2 ** 20], [0, 2 ** 42]), [0, 0, 0, 0]), /data section has 4 bytes/],
    ['a gap before the first tensor', handBuilt(f32([1], [4, 8]), [0, 0, 0, 0, 0, 0, 0, 0]), /without gaps or overlaps/],
    [
      'two tensors that overlap',
      handBuilt('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)),
      /without gaps or overlaps/,
    ],
    ['bytes after the last tensor', handBuilt(f32([1], [0, 4]), [0, 0, 0, 0, 9]), /after the last tensor/],
    ['non-string metadata', handBuilt('{"__metadata__":{"n":1}}', []), /must be a string, got 1/],
    ['metadata that is a list', handBuilt('{"__metadata__":["pt"]}', []), /object of strings/],
    ['a NaN in F32 data', handBuilt(f32([1], [0, 4]), [0, 0, 0xc0, 0x7f]), /value 0 is NaN/],
  ];
  it.each(cases)('refuses %s', (_name, bytes, message) => {
    let thrown: unknown;
    try {
      decodeSafetensors(bytes);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(message.source.includes('NaN') ? NonFiniteError : SafetensorsError);
    expect((thrown as Error).message).toMatch(message);
  });

  it('the header limit is the reference implementation’s 100 MB', () => {
    expect(MAX_HEADER_BYTES).toBe(100_000_000);
  });

  it('refuses to write what it would refuse to read', () => {
    const t = (shape: number[], n: number) => ({ dtype: 'F32' as const, shape, data: new Float32Array(n) });
    expect(() => encodeSafetensors({ tensors: { __metadata__: t([1], 1) }, metadata: {} })).toThrow(/cannot be named __metadata__/);
    expect(() => encodeSafetensors({ tensors: { w: t([2], 3) }, metadata: {} })).toThrow(/holds 2 values, data has 3/);
    expect(() => encodeSafetensors({ tensors: { w: t([-1], 0) }, metadata: {} })).toThrow(SafetensorsError);
    expect(() => encodeSafetensors({ tensors: { w: { dtype: 'F32', shape: [1], data: Float32Array.from([NaN]) } }, metadata: {} })).toThrow(NonFiniteError);
  });
});
