import { matmul, randomNormal, Rng, ShapeError, sliceCols } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { commonSubspace, cora, svd } from '../src/index.js';
import { inner, orthonormal, principalCosines, withSingularValues } from './helpers.js';

/** Σᵢ‖Qᵀ·Wᵢ‖_F², the energy of the weights in the span of orthonormal Q. */
function captured(q: ReturnType<typeof orthonormal>, weights: ReturnType<typeof randomNormal>[]): number {
  return weights.reduce((t, w) => {
    const p = matmul(q, w, { transposeA: true });
    return t + inner(p, p);
  }, 0);
}

describe('CoRA', () => {
  it('by default B is the top-r left singular subspace of the module’s W, fixed; A trains from 0', () => {
    const rng = new Rng(6);
    const weight = withSingularValues(8, 6, [5, 4, 1, 0.5], rng);
    const state = cora().init({ weight, r: 2, lora_alpha: 2, rng });
    const { lora_A, lora_B } = state.adapter();
    for (const c of principalCosines(lora_B, sliceCols(svd(weight).U, 0, 2))) expect(c).toBeGreaterThan(1 - 1e-12);
    expect(state.parameters).toEqual([lora_A]);
    expect(lora_A.toFlat().every((v) => v === 0)).toBe(true);
  });

  it('commonSubspace captures the most energy of all the weights of any rank-r subspace', () => {
    const rng = new Rng(7);
    const weights = [randomNormal(6, 4, rng), randomNormal(6, 9, rng), randomNormal(6, 3, rng)];
    const basis = commonSubspace(weights, 2);
    const best = captured(basis, weights);
    for (let trial = 0; trial < 50; trial++) expect(captured(orthonormal(6, 2, rng), weights)).toBeLessThanOrEqual(best + 1e-12);
    // Shared by modules with different inputs: the basis is used as is.
    const state = cora({ basis, trainB: true }).init({ weight: weights[1], r: 2, lora_alpha: 2, rng });
    expect(state.parameters.length).toBe(2);
    expect(state.adapter().lora_B.toArray()).toEqual(basis.toArray());
    expect(() => cora({ basis }).init({ weight: randomNormal(5, 4, rng), r: 2, lora_alpha: 2, rng })).toThrow(ShapeError);
    expect(() => commonSubspace([randomNormal(6, 2, rng), randomNormal(5, 2, rng)], 1)).toThrow(ShapeError);
  });
});
