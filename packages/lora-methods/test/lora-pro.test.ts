import type { LoraWeights } from '@almora/lora';
import { add, fromFlat, type Matrix, matmul, maxAbs, randomNormal, Rng, scale, sub, zeros } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { loraPro, loraProGradients } from '../src/index.js';
import { adapterGradients, inner } from './helpers.js';

/** s·(B·g_A + g_B·A), the full-weight change a step of the adapter makes (to first order). */
function equivalent(adapter: LoraWeights, g: LoraWeights, s: number): Matrix {
  return scale(add(matmul(adapter.lora_B, g.lora_A), matmul(g.lora_B, adapter.lora_A)), s);
}

/**
 * The brute-force answer: the columns of the linear map (g_A, g_B) ↦ vec(s·(B·g_A + g_B·A)), one
 * per unknown (r·in + out·r of them), orthonormalised by modified Gram–Schmidt (twice, dropping
 * dependent columns — the map has an r²-dimensional null space), and vec(∂W) projected on them:
 * the closest achievable equivalent gradient, found without any closed form.
 */
function bruteForce(adapter: LoraWeights, w: Matrix, s: number): { projection: Matrix; rank: number } {
  const { lora_A: a, lora_B: b } = adapter;
  const [r, inn, out] = [a.rows, a.cols, b.rows];
  const columns: Float64Array[] = [];
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < inn; j++) {
      const e = zeros(r, inn);
      e.set(i, j, 1);
      columns.push(Float64Array.from(scale(matmul(b, e), s).toFlat()));
    }
  }
  for (let i = 0; i < out; i++) {
    for (let j = 0; j < r; j++) {
      const e = zeros(out, r);
      e.set(i, j, 1);
      columns.push(Float64Array.from(scale(matmul(e, a), s).toFlat()));
    }
  }
  const basis: Float64Array[] = [];
  const dot = (x: Float64Array, y: Float64Array) => x.reduce((acc, v, k) => acc + v * y[k], 0);
  for (const c of columns) {
    const v = Float64Array.from(c);
    const before = Math.sqrt(dot(v, v));
    for (let pass = 0; pass < 2; pass++) {
      for (const q of basis) {
        const p = dot(q, v);
        for (let k = 0; k < v.length; k++) v[k] -= p * q[k];
      }
    }
    const norm = Math.sqrt(dot(v, v));
    if (norm > 1e-9 * before) basis.push(v.map((x) => x / norm));
  }
  const target = Float64Array.from(w.toFlat());
  const projection = new Float64Array(target.length);
  for (const q of basis) {
    const p = dot(q, target);
    for (let k = 0; k < q.length; k++) projection[k] += p * q[k];
  }
  return { projection: fromFlat(out, inn, projection), rank: basis.length };
}

describe('LoRA-Pro', () => {
  const rng = new Rng(17);
  const [out, inn, r, s] = [5, 4, 2, 1.5];
  const adapter = { lora_A: randomNormal(r, inn, rng), lora_B: randomNormal(out, r, rng) };
  const w = randomNormal(out, inn, rng);
  const plain = adapterGradients(w, adapter, s);

  it('the brute force: rank r·in + out·r − r² (null space (X·A, −B·X)), residual orthogonal to every achievable direction', () => {
    const random = randomNormal(out, inn, new Rng(2));
    const { projection, rank } = bruteForce(adapter, random, s);
    expect(rank).toBe(r * inn + out * r - r * r);
    const residual = sub(random, projection);
    // The residual is orthogonal to every achievable direction, e.g. B·E and E·A.
    const e = randomNormal(r, inn, new Rng(3));
    const f = randomNormal(out, r, new Rng(4));
    expect(Math.abs(inner(residual, matmul(adapter.lora_B, e)))).toBeLessThan(1e-10);
    expect(Math.abs(inner(residual, matmul(f, adapter.lora_A)))).toBeLessThan(1e-10);
    expect(maxAbs(residual)).toBeGreaterThan(1e-3);
  });

  for (const x of ['closest', 'zero'] as const) {
    it(`the equivalent gradient is the brute-force least-squares optimum to 1e-9 (X ${x})`, () => {
      const g = loraProGradients(adapter, plain, s, x);
      expect(maxAbs(sub(equivalent(adapter, g, s), bruteForce(adapter, w, s).projection))).toBeLessThan(1e-9);
    });
  }

  it("plain LoRA's gradients are not that optimum (the test can fail)", () => {
    expect(maxAbs(sub(equivalent(adapter, plain, s), bruteForce(adapter, w, s).projection))).toBeGreaterThan(1e-3);
  });

  it("is still the optimum at PEFT's init (B = 0: pseudo-inverses)", () => {
    const start = { lora_A: adapter.lora_A, lora_B: zeros(out, r) };
    const g = loraProGradients(start, adapterGradients(w, start, s), s);
    expect(maxAbs(sub(equivalent(start, g, s), bruteForce(start, w, s).projection))).toBeLessThan(1e-9);
    expect(maxAbs(g.lora_A)).toBe(0);
  });

  it("X = 'closest' makes (g_A, g_B) the nearest to plain LoRA's gradients among all solutions", () => {
    const distance = (g: LoraWeights) => {
      const [da, db] = [sub(g.lora_A, plain.lora_A), sub(g.lora_B, plain.lora_B)];
      return inner(da, da) + inner(db, db);
    };
    const best = loraProGradients(adapter, plain, s, 'closest');
    const zero = loraProGradients(adapter, plain, s, 'zero');
    expect(distance(best)).toBeLessThan(distance(zero));
    const nudge = new Rng(9);
    for (let trial = 0; trial < 10; trial++) {
      const e = randomNormal(r, r, nudge, { std: 1e-3 });
      const moved = { lora_A: add(best.lora_A, matmul(e, adapter.lora_A)), lora_B: sub(best.lora_B, matmul(adapter.lora_B, e)) };
      expect(maxAbs(sub(equivalent(adapter, moved, s), equivalent(adapter, best, s)))).toBeLessThan(1e-12);
      expect(distance(moved)).toBeGreaterThan(distance(best));
    }
  });

  it('as a method: plain LoRA init and the transformed gradients, no ∂W needed', () => {
    const method = loraPro();
    expect(method.needsWeightGradient).toBe(false);
    const state = method.init({ weight: randomNormal(out, inn, rng), r, lora_alpha: 3, rng });
    for (const p of state.parameters) for (let k = 0; k < p.data.length; k++) p.data[k] += rng.normal();
    const g = state.gradients(adapterGradients(w, state.adapter(), state.scaling));
    expect(
      maxAbs(sub(equivalent(state.adapter(), { lora_A: g[0], lora_B: g[1] }, state.scaling), bruteForce(state.adapter(), w, state.scaling).projection)),
    ).toBeLessThan(1e-9);
  });
});
