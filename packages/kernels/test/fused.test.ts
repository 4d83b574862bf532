import { describe, expect, it } from 'vitest';
import { type Backend, cpuCore, type DType, type Matrix, maxAbs, randomNormal, Rng, scale, scoped, sub, toDType } from '@almora/tensor';
import { cpuBackend, cpuFusedKernels, featureTree, fused, FUSED_KERNEL_NAMES, type FusedKernels, taylorExp } from '../src/index.js';

/**
 * Every default composition (the fused kernels of a backend with only the core: tensor's cpuCore)
 * against its exact twin, the CPU's fused override, relative to the result's scale: ~1e-12 in
 * float64, a few float32 roundings per term in float32.
 */
const TOLERANCE: Record<DType, number> = { float64: 1e-12, float32: 2e-5 };

const rng = new Rng(17);
const normal = (rows: number, cols: number) => randomNormal(rows, cols, rng);
const tree = featureTree(3, taylorExp(4), 0.8, 'query');
const x = scale(normal(29, 3), 0.5);
const queries = normal(29, 4);
const keys = normal(33, 4);
const p = cpuFusedKernels.attentionProbabilities(queries, keys, 0.6);

const cases: [string, (k: FusedKernels<Matrix>, up: (m: Matrix) => Matrix) => Matrix][] = [
  ['faceSplit', (k, up) => k.faceSplit(up(normal(29, 5)), up(normal(29, 3)))],
  ['faceSplitReduce', (k, up) => k.faceSplitReduce(up(normal(29, 3)), up(normal(29, 12)))],
  ['productFeatures', (k, up) => k.productFeatures(up(x), tree)],
  ['productFeaturesBackward', (k, up) => k.productFeaturesBackward(up(x), tree, up(normal(29, tree.parents.length)))],
  ['attentionProbabilities', (k, up) => k.attentionProbabilities(up(queries), up(keys), 0.6)],
  ['attentionProbabilities causal from 0', (k, up) => k.attentionProbabilities(up(queries), up(keys), 0.6, 0)],
  ['attentionProbabilities causal from 2', (k, up) => k.attentionProbabilities(up(queries), up(keys), 0.6, 2)],
  ['attentionProbabilities with scores near 700', (k, up) => k.attentionProbabilities(up(scale(queries, 12)), up(scale(keys, 12)), 0.6, 3)],
  ['attentionScoresGradient', (k, up) => k.attentionScoresGradient(up(p), up(normal(29, 4)), up(normal(33, 4)), up(normal(29, 1)))],
];

describe.each(['float64', 'float32'] as const)('each default composition agrees with the CPU override in %s', (dtype) => {
  it.each(cases)('%s', (_name, run) => {
    // Both sides see the same inputs, drawn once and rounded to the dtype.
    const inputs: Matrix[] = [];
    let replay = -1;
    const record = (m: Matrix) => {
      const rounded = toDType(m, dtype);
      inputs.push(rounded);
      return rounded;
    };
    const expected = run(cpuFusedKernels, record);
    const actual = run(fused(cpuCore), () => inputs[++replay]);
    expect(actual.dtype).toBe(dtype);
    expect(actual.shape).toEqual(expected.shape);
    expect(maxAbs(sub(actual, expected))).toBeLessThanOrEqual(TOLERANCE[dtype] * Math.max(1, maxAbs(expected)));
  });
});

describe('fused: the one dispatch point', () => {
  it("takes a backend's own method where it has one, the default composition where it has not", () => {
    const a = normal(4, 2);
    const b = normal(4, 3);
    let called = 0;
    const overriding = { ...cpuCore, faceSplit: (u: Matrix, w: Matrix) => (called++, cpuFusedKernels.faceSplit(u, w)) } as Backend<Matrix>;
    fused(overriding).faceSplit(a, b);
    expect(called).toBe(1);
    expect(maxAbs(sub(fused(cpuCore).faceSplit(a, b), fused(cpuBackend).faceSplit(a, b)))).toBe(0);
    for (const name of FUSED_KERNEL_NAMES) {
      expect(fused(cpuBackend)[name]).not.toBe(fused(cpuCore)[name]);
      expect(name in cpuCore).toBe(false);
    }
  });

  it('lets a scope release every handle made, by an override or by a default composition', () => {
    for (const base of [cpuCore, cpuBackend]) {
      const made = new Set<Matrix>();
      const released = new Set<Matrix>();
      const counting = { ...base, dispose: (m: Matrix) => void released.add(m) } as Backend<Matrix>;
      for (const name of [
        'upload',
        'zeros',
        'sliceRows',
        'matmul',
        'add',
        'sub',
        'hadamard',
        'affine',
        'abs',
        'exp',
        'reciprocal',
        'scaleRows',
        'rowSums',
        'colSums',
        'rowMax',
        'triangle',
        ...FUSED_KERNEL_NAMES,
      ] as const) {
        const primitive = (base as unknown as Record<string, ((...args: unknown[]) => Matrix) | undefined>)[name];
        if (!primitive) continue;
        (counting as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
          const handle = primitive(...args);
          made.add(handle);
          return handle;
        };
      }
      const scope = scoped(counting);
      const kernels = fused(scope);
      kernels.attentionProbabilities(scope.upload(queries), scope.upload(keys), 0.5, 1);
      kernels.productFeaturesBackward(scope.upload(x), tree, scope.upload(normal(29, tree.parents.length)));
      kernels.faceSplitReduce(scope.upload(normal(5, 2)), scope.upload(normal(5, 6)));
      scope.releaseAll();
      expect(made.size).toBeGreaterThan(0);
      expect([...made].filter((m) => !released.has(m))).toEqual([]);
    }
  });
});
