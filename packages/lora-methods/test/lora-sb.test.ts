import { identity, matmul, maxAbs, randomNormal, Rng, scale, scaleCols, sliceCols, sub } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { loraSb } from '../src/index.js';
import { effective, orthonormal } from './helpers.js';

describe('LoRA-SB', () => {
  it('trains exactly r² parameters per module, whatever its shape', () => {
    const rng = new Rng(1);
    for (const [out, inn, r] of [
      [8, 6, 3],
      [6, 12, 4],
      [16, 16, 1],
    ]) {
      const state = loraSb().init({ weight: randomNormal(out, inn, rng), weightGradient: randomNormal(out, inn, rng), r, lora_alpha: 2 * r, rng });
      expect(state.parameters.reduce((n, p) => n + p.size, 0)).toBe(r * r);
    }
  });

  it('starts at s·γ·[−∂W]_r and every update stays in span(U_r)·R·span(V_r)ᵀ', () => {
    const rng = new Rng(2);
    const [out, inn, r] = [9, 7, 2];
    const u = orthonormal(out, 4, rng);
    const v = orthonormal(inn, 4, rng);
    const sigma = [4, 3, 1, 0.5];
    const gradient = scale(matmul(scaleCols(u, sigma), v, { transposeB: true }), -1);
    const weight = randomNormal(out, inn, rng);
    const state = loraSb({ gamma: 0.5 }).init({ weight, weightGradient: gradient, r, lora_alpha: 4, rng });
    const ur = sliceCols(u, 0, r);
    const vr = sliceCols(v, 0, r);
    const best = matmul(scaleCols(ur, sigma.slice(0, r)), vr, { transposeB: true });
    expect(maxAbs(sub(sub(effective(weight, state.adapter(), state.scaling), weight), scale(best, 0.5 * state.scaling)))).toBeLessThan(1e-12);
    // Any R: (I − U_rU_rᵀ)·ΔW = 0 and ΔW·(I − V_rV_rᵀ) = 0.
    for (const p of state.parameters) for (let k = 0; k < p.data.length; k++) p.data[k] = rng.normal();
    const delta = sub(effective(weight, state.adapter(), state.scaling), weight);
    const outside = sub(identity(out), matmul(ur, ur, { transposeB: true }));
    const outsideIn = sub(identity(inn), matmul(vr, vr, { transposeB: true }));
    expect(maxAbs(delta)).toBeGreaterThan(0.1);
    expect(maxAbs(matmul(outside, delta))).toBeLessThan(1e-12);
    expect(maxAbs(matmul(delta, outsideIn))).toBeLessThan(1e-12);
  });
});
