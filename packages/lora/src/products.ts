import { abs, assertFinite, type Backend, type DeviceMatrix, matmul, type Matrix, maxAbs, scoped, type TransposeForms } from '@almora/tensor';
import { readBack, type Reading } from './head.js';

/**
 * The layer's dense products of host matrices — projections X·W, weight gradients ∂Yᵀ·X and their
 * bounds |∂Y|ᵀ·|X|, the norm quantities' X·W — O(L·d²) each. Float64 products run on a backend
 * that computes in the inputs' precision (each X uploaded once, |X| made once, the backend's matmul
 * instead of the host's); the others on the host as before: a float32 device would round float64
 * products, and the host accumulates float32 products in float64.
 */
export interface DenseProducts {
  /** op(A)·op(|B| when `absoluteB`, else B), on the host. */
  matmul(a: Matrix, b: Matrix, forms?: TransposeForms, absoluteB?: boolean): Reading<Matrix>;
  /**
   * Gᵀ·X for G a handle of `backend` (the one the products run on, or any when they run on the
   * host): multiplied where G is when it can be, else read back first; the product (or G) checked finite.
   */
  transposedProduct<T extends DeviceMatrix>(backend: Backend<T>, g: T, x: Matrix, name: string): Reading<Matrix>;
  /** max |X·F₁·F₂·…| (products taken left to right), reading back one column rather than the product. */
  maxAbsProduct(x: Matrix, factors: readonly Matrix[]): Reading<number>;
  /** Releases what was uploaded. */
  release(): void;
}

/** Dense products on `backend` when it computes float64 products in float64, else on the host. */
export function denseProducts(backend: Backend | undefined): DenseProducts {
  const host = hostProducts();
  if (!backend || backend.precision !== 'input') return host;
  const scope = scoped(backend);
  const uploads = new Map<Matrix, DeviceMatrix>();
  const absolutes = new Map<Matrix, DeviceMatrix>();
  const finite = new Map<Matrix, boolean>();
  const handle = (m: Matrix) => uploads.get(m) ?? set(uploads, m, scope.upload(m));
  // An infinite bound (no certificate on this range) is a legitimate input: the host's product carries it, a backend's read-back refuses it.
  const allFinite = (m: Matrix) => finite.get(m) ?? set(finite, m, everyEntryFinite(m));
  const absolute = (m: Matrix) => absolutes.get(m) ?? set(absolutes, m, scope.abs(handle(m)));
  return {
    *matmul(a, b, forms = {}, absoluteB = false) {
      if (a.dtype !== 'float64' || !allFinite(a) || !allFinite(b)) return yield* host.matmul(a, b, forms, absoluteB);
      const product = scope.matmul(handle(a), absoluteB ? absolute(b) : handle(b), forms);
      try {
        return yield* readBack(scope, product, a.dtype);
      } finally {
        scope.dispose(product);
      }
    },
    *transposedProduct(owner, g, x, name) {
      if (x.dtype !== 'float64' || (owner as Backend) !== backend) return yield* host.transposedProduct(owner, g, x, name);
      const product = scope.matmul(g, handle(x), { transposeA: true });
      try {
        const out = yield* readBack(scope, product, x.dtype);
        assertFinite(out, `the ${backend.name} backend's ${name}ᵀ·X`);
        return out;
      } finally {
        scope.dispose(product);
      }
    },
    *maxAbsProduct(x, factors) {
      if (x.dtype !== 'float64') return yield* host.maxAbsProduct(x, factors);
      const made = scoped(scope);
      try {
        let product = handle(x);
        for (const factor of factors) product = made.matmul(product, handle(factor));
        const rows = yield* readBack(made, made.rowMax(made.abs(product)), 'float64');
        return maxAbs(rows);
      } finally {
        made.releaseAll();
      }
    },
    release() {
      host.release();
      uploads.clear();
      absolutes.clear();
      finite.clear();
      scope.releaseAll();
    },
  };
}

function everyEntryFinite(m: Matrix): boolean {
  for (let i = 0; i < m.rows; i++) {
    const base = m.offset + i * m.stride;
    for (let j = 0; j < m.cols; j++) if (!Number.isFinite(m.data[base + j])) return false;
  }
  return true;
}

function set<K, V>(map: Map<K, V>, key: K, value: V): V {
  map.set(key, value);
  return value;
}

/** The host's products (|B| made once per matrix). */
function hostProducts(): DenseProducts {
  const absolutes = new Map<Matrix, Matrix>();
  return {
    // eslint-disable-next-line require-yield
    *matmul(a, b, forms = {}, absoluteB = false) {
      return matmul(a, absoluteB ? (absolutes.get(b) ?? set(absolutes, b, abs(b))) : b, forms);
    },
    *transposedProduct(owner, g, x, name) {
      const host = yield* readBack(owner, g, x.dtype);
      assertFinite(host, `the ${owner.name} backend's ${name}`);
      return matmul(host, x, { transposeA: true });
    },
    // eslint-disable-next-line require-yield
    *maxAbsProduct(x, factors) {
      return maxAbs(factors.reduce((product, factor) => matmul(product, factor), x));
    },
    release() {
      absolutes.clear();
    },
  };
}
