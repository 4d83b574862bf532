import { add, identity, InvalidArgumentError, matmul, maxAbs, randomNormal, Rng, scale, scaleCols, sliceCols, sub, transpose } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { loraOne } from '../src/index.js';
import { effective, finiteDifferenceGradients, loss, lossGradient, methodGradients, orthonormal, principalCosines, quadratic } from './helpers.js';

describe('LoRA-One', () => {
  const rng = new Rng(21);
  const [out, inn, r] = [8, 6, 3];
  const u = orthonormal(out, 5, rng);
  const v = orthonormal(inn, 5, rng);
  const sigma = [5, 3, 2, 0.5, 0.25];
  // −G = U·diag(σ)·Vᵀ with known singular subspaces.
  const gradient = scale(matmul(scaleCols(u, sigma), v, { transposeB: true }), -1);
  const weight = randomNormal(out, inn, rng);
  const gamma = 0.7;
  const method = loraOne({ gamma, lambda: 1e-3 });
  const state = method.init({ weight, weightGradient: gradient, r, lora_alpha: 6, rng });

  it('col(B₀) and row(A₀) are the top-r left and right singular subspaces of −∂W (principal angles ≈ 0)', () => {
    const { lora_A, lora_B } = state.adapter();
    for (const c of principalCosines(lora_B, sliceCols(u, 0, r))) expect(c).toBeGreaterThan(1 - 1e-12);
    for (const c of principalCosines(transpose(lora_A), sliceCols(v, 0, r))) expect(c).toBeGreaterThan(1 - 1e-12);
    // …and not the next one: the (r+1)-th direction is orthogonal to col(B₀).
    expect(principalCosines(lora_B, sliceCols(u, r, r + 1))[0]).toBeLessThan(1e-12);
  });

  it('the first update s·B₀·A₀ is s·γ times the best rank-r approximation of −∂W', () => {
    const { lora_A, lora_B } = state.adapter();
    const best = matmul(scaleCols(sliceCols(u, 0, r), sigma.slice(0, r)), sliceCols(v, 0, r), { transposeB: true });
    expect(maxAbs(sub(scale(matmul(lora_B, lora_A), state.scaling), scale(best, state.scaling * gamma)))).toBeLessThan(1e-12);
  });

  it('a small spectral init lowers the loss it was computed from (it is a descent step)', () => {
    const problem = quadratic(10, out, inn, new Rng(3));
    const g = lossGradient(problem, weight);
    const small = loraOne({ gamma: 1e-4 }).init({ weight, weightGradient: g, r, lora_alpha: r, rng });
    expect(loss(problem, effective(weight, small.adapter(), small.scaling))).toBeLessThan(loss(problem, weight));
  });

  it('gradients are the exact ones preconditioned: (BᵀB + λI)·g_A = ∂A and g_B·(AAᵀ + λI) = ∂B', () => {
    const problem = quadratic(7, out, inn, new Rng(4));
    const [gA, gB] = methodGradients(state, weight, problem);
    const [fdA, fdB] = finiteDifferenceGradients(state, weight, problem);
    const { lora_A, lora_B } = state.adapter();
    const ridge = scale(identity(r), 1e-3);
    const backA = matmul(add(matmul(lora_B, lora_B, { transposeA: true }), ridge), gA).toFlat();
    const backB = matmul(gB, add(matmul(lora_A, lora_A, { transposeB: true }), ridge)).toFlat();
    const scaleA = Math.max(...Array.from(fdA, Math.abs));
    const scaleB = Math.max(...Array.from(fdB, Math.abs));
    backA.forEach((x, i) => expect(Math.abs(x - fdA[i])).toBeLessThan(1e-7 * scaleA));
    backB.forEach((x, i) => expect(Math.abs(x - fdB[i])).toBeLessThan(1e-7 * scaleB));
    // Not the raw gradient: the preconditioner changes it.
    expect(Math.abs(gA.toFlat()[0] - fdA[0])).toBeGreaterThan(1e-6 * scaleA);
  });

  it('needs ∂W at init and positive γ, λ', () => {
    expect(method.needsInitialGradient).toBe(true);
    expect(() => method.init({ weight, r, lora_alpha: 1, rng })).toThrow(InvalidArgumentError);
    expect(() => loraOne({ gamma: 0 })).toThrow(InvalidArgumentError);
    expect(() => loraOne({ lambda: -1 })).toThrow(InvalidArgumentError);
  });
});
