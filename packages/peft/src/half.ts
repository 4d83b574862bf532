/**
 * IEEE 754 binary16 (F16) and bfloat16 (BF16) bit patterns to and from numbers, exactly: decoding
 * is exact (every F16 and BF16 value is a float32), encoding rounds to nearest, ties to even,
 * straight from the float64 value (no detour through float32, which could round twice).
 */

/** A small binary floating-point format: exponent and fraction widths. */
interface Format {
  exponentBits: number;
  fractionBits: number;
}

/** IEEE 754 binary16. */
export const F16: Format = { exponentBits: 5, fractionBits: 10 };
/** bfloat16: float32's exponent, 7 fraction bits. */
export const BF16: Format = { exponentBits: 8, fractionBits: 7 };

/** The value of a 16-bit pattern of `format`: ±0, subnormals, normals, ±Infinity and NaN. */
export function decodeBits(bits: number, format: Format): number {
  const { exponentBits, fractionBits } = format;
  const sign = bits >> (exponentBits + fractionBits) ? -1 : 1;
  const exponent = (bits >> fractionBits) & ((1 << exponentBits) - 1);
  const fraction = bits & ((1 << fractionBits) - 1);
  const bias = (1 << (exponentBits - 1)) - 1;
  if (exponent === (1 << exponentBits) - 1) return fraction === 0 ? sign * Infinity : Number.NaN;
  // Subnormal: 0.fraction × 2^(1 − bias); normal: 1.fraction × 2^(exponent − bias).
  if (exponent === 0) return sign * fraction * 2 ** (1 - bias - fractionBits);
  return sign * (2 ** fractionBits + fraction) * 2 ** (exponent - bias - fractionBits);
}

/** `q` rounded to an integer, ties to even. */
function roundHalfEven(q: number): number {
  const floor = Math.floor(q);
  const rest = q - floor;
  if (rest > 0.5) return floor + 1;
  if (rest < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * The bit pattern of `format` nearest to `x` (ties to even); a value past the largest finite one
 * (by at least half its last place) becomes ±Infinity, as IEEE 754 rounding says; NaN becomes the
 * quiet NaN.
 */
export function encodeBits(x: number, format: Format): number {
  const { exponentBits, fractionBits } = format;
  const signBit = x < 0 || Object.is(x, -0) ? 1 << (exponentBits + fractionBits) : 0;
  const infinity = ((1 << exponentBits) - 1) << fractionBits;
  if (Number.isNaN(x)) return infinity | (1 << (fractionBits - 1));
  const a = Math.abs(x);
  if (a === Infinity) return signBit | infinity;
  const bias = (1 << (exponentBits - 1)) - 1;
  const minNormal = 2 ** (1 - bias);
  if (a < minNormal) {
    // Multiples of the smallest subnormal; rounding up to 2^fractionBits lands on the smallest
    // normal, whose pattern is the next integer: the encoding carries over by itself.
    return signBit | roundHalfEven(a / 2 ** (1 - bias - fractionBits));
  }
  let exponent = Math.floor(Math.log2(a));
  if (2 ** exponent > a) exponent--;
  else if (2 ** (exponent + 1) <= a) exponent++;
  let fraction = roundHalfEven((a / 2 ** exponent - 1) * 2 ** fractionBits);
  if (fraction === 2 ** fractionBits) {
    fraction = 0;
    exponent++;
  }
  if (exponent > bias) return signBit | infinity;
  return signBit | ((exponent + bias) << fractionBits) | fraction;
}
