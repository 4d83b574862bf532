// Central differences of a scalar function of a matrix's entries, for the gradient checks of every
// package's tests: the matrix is changed in place and restored.

export function centralDifferences(m, f, entries, h) {
  const out = new Float64Array(entries.length);
  entries.forEach((e, n) => {
    const t = m.offset + Math.floor(e / m.cols) * m.stride + (e % m.cols);
    const original = m.data[t];
    m.data[t] = original + h;
    const plus = f();
    m.data[t] = original - h;
    const minus = f();
    m.data[t] = original;
    out[n] = (plus - minus) / (2 * h);
  });
  return out;
}
