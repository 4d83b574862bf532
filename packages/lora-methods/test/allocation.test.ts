import { loraConfig, loraScaling } from '@almora/peft';
import { InvalidArgumentError, matmul, randomNormal, Rng, scale } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { apportion, geloraRanks, srLoraRanks, stableRank, subloraRanks, svd, twoNN } from '../src/index.js';
import { orthonormal, withSingularValues } from './helpers.js';

const sum = (record: Record<string, number>) => Object.values(record).reduce((a, b) => a + b, 0);

describe('apportion', () => {
  it('sums exactly to the budget, every rank in [1, cap], over many random cases', () => {
    const rng = new Rng(1);
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + rng.int(6);
      const scores: Record<string, number> = {};
      const caps: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        scores[`m${i}`] = rng.next() < 0.2 ? 0 : rng.uniform(0, 10);
        caps[`m${i}`] = 1 + rng.int(8);
      }
      const budget = n + rng.int(sum(caps) - n + 1);
      const ranks = apportion(scores, budget, caps);
      expect(sum(ranks)).toBe(budget);
      for (const name of Object.keys(scores)) {
        expect(Number.isInteger(ranks[name])).toBe(true);
        expect(ranks[name]).toBeGreaterThanOrEqual(1);
        expect(ranks[name]).toBeLessThanOrEqual(caps[name]);
      }
    }
  });

  it('is proportional above the floor of 1, and equal for equal scores', () => {
    const caps = { a: 64, b: 64, c: 64 };
    expect(apportion({ a: 1, b: 1, c: 2 }, 3 + 12, caps)).toEqual({ a: 4, b: 4, c: 7 });
    expect(apportion({ a: 0, b: 0, c: 0 }, 9, caps)).toEqual({ a: 3, b: 3, c: 3 });
    expect(apportion({ a: 100, b: 1 }, 10, { a: 4, b: 64 })).toEqual({ a: 4, b: 6 });
  });

  it('refuses budgets it cannot meet and bad scores', () => {
    expect(() => apportion({ a: 1, b: 1 }, 1, { a: 4, b: 4 })).toThrow(InvalidArgumentError);
    expect(() => apportion({ a: 1, b: 1 }, 9, { a: 4, b: 4 })).toThrow(InvalidArgumentError);
    expect(() => apportion({ a: 1, b: 1 }, 2.5, { a: 4, b: 4 })).toThrow(InvalidArgumentError);
    expect(() => apportion({ a: Number.NaN }, 1, { a: 4 })).toThrow(InvalidArgumentError);
    expect(() => apportion({}, 0, {})).toThrow(InvalidArgumentError);
  });
});

describe('SR-LoRA', () => {
  it('the stable rank of a matrix with known singular values is exact', () => {
    const s = [3, 2, 1, 0.5];
    const expected = s.reduce((t, v) => t + v * v, 0) / 9;
    expect(Math.abs(stableRank(withSingularValues(9, 7, s, new Rng(2))) - expected)).toBeLessThan(1e-12);
    expect(stableRank(withSingularValues(5, 5, [1, 1, 1, 1, 1], new Rng(3)))).toBeCloseTo(5, 12);
  });

  it('ranks follow the stable ranks, sum to the budget, and PEFT reads each module’s r from the rank_pattern', () => {
    const rng = new Rng(4);
    const weights = {
      'model.layers.0.self_attn.q_proj': withSingularValues(16, 16, [1, 1, 1, 1, 1, 1, 1, 1], rng),
      'model.layers.0.self_attn.v_proj': withSingularValues(16, 16, [4, 1, 1, 1], rng),
      'model.layers.1.self_attn.q_proj': withSingularValues(16, 16, [1], rng),
    };
    const { rank_pattern, scores } = srLoraRanks(weights, 16);
    expect(sum(rank_pattern)).toBe(16);
    expect(scores['model.layers.0.self_attn.q_proj']).toBeCloseTo(8, 10);
    // Stable ranks 8, 19/16 and 1: quotas 1 + 13·(8, 1.1875, 1)/10.1875 = 11.21, 2.52, 2.28.
    expect(rank_pattern).toEqual({ 'model.layers.0.self_attn.q_proj': 11, 'model.layers.0.self_attn.v_proj': 3, 'model.layers.1.self_attn.q_proj': 2 });
    const config = loraConfig({ r: 8, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], rank_pattern });
    for (const [module, r] of Object.entries(rank_pattern)) expect(loraScaling(config, module)).toBeCloseTo(8 / r, 14);
  });
});

describe('GeLoRA', () => {
  it('TwoNN recovers the dimension of points on a linear subspace embedded in high dimension', () => {
    const rng = new Rng(5);
    for (const d of [1, 3, 5]) {
      const basis = orthonormal(20, d, rng);
      const points = matmul(randomNormal(800, d, rng), basis, { transposeB: true });
      expect(Math.abs(twoNN(points) - d)).toBeLessThan(0.5);
    }
  });

  it('TwoNN refuses duplicates and too few points', () => {
    const rng = new Rng(6);
    const p = randomNormal(5, 3, rng);
    p.row(4).set(p.row(0));
    expect(() => twoNN(p)).toThrow(InvalidArgumentError);
    expect(() => twoNN(randomNormal(2, 3, rng))).toThrow(InvalidArgumentError);
  });

  it('ranks follow the ID increase of each layer, every module ≥ 1, summing to the budget', () => {
    const modules = { 'layers.0.q': 0, 'layers.0.v': 0, 'layers.1.q': 1, 'layers.2.q': 2 };
    const maxRanks = { 'layers.0.q': 16, 'layers.0.v': 16, 'layers.1.q': 16, 'layers.2.q': 16 };
    const { rank_pattern, scores } = geloraRanks({ intrinsicDimensions: [2, 8, 11, 9], modules, maxRanks, budget: 19 });
    expect(scores).toEqual({ 'layers.0.q': 6, 'layers.0.v': 6, 'layers.1.q': 3, 'layers.2.q': 0 });
    expect(rank_pattern).toEqual({ 'layers.0.q': 7, 'layers.0.v': 7, 'layers.1.q': 4, 'layers.2.q': 1 });
    expect(() => geloraRanks({ intrinsicDimensions: [2, 8], modules, maxRanks, budget: 8 })).toThrow(InvalidArgumentError);
  });
});

describe('SubLoRA', () => {
  const rng = new Rng(7);
  const gradients = {
    a: withSingularValues(6, 5, [4, 3, 1, 0.5], rng),
    b: withSingularValues(8, 4, [2, 2, 1.5, 1], rng),
    c: scale(withSingularValues(5, 5, [1, 0.9, 0.8], rng), 3),
  };
  const curvature = { a: 1, b: 0.5, c: 2 };

  it('the greedy gains are non-increasing, each is σ²/(2c), and the ranks sum to the budget', () => {
    const { rank_pattern, gains, scores } = subloraRanks({ gradients, curvature, budget: 9 });
    expect(sum(rank_pattern)).toBe(9);
    expect(gains.length).toBe(6);
    for (let i = 1; i < gains.length; i++) expect(gains[i]).toBeLessThanOrEqual(gains[i - 1]);
    const sa = svd(gradients.a).S;
    const fa = Array.from(sa.subarray(0, rank_pattern.a)).reduce((t, v) => t + (v * v) / 2, 0);
    expect(scores.a).toBeCloseTo(fa, 12);
  });

  it('the greedy allocation is optimal: no other allocation of the budget has a larger predicted decrease', () => {
    const budget = 8;
    const { scores } = subloraRanks({ gradients, curvature, budget });
    const best = sum(scores);
    const f = (name: 'a' | 'b' | 'c', r: number) => Array.from(svd(gradients[name]).S.subarray(0, r)).reduce((t, v) => t + (v * v) / (2 * curvature[name]), 0);
    let top = 0;
    for (let ra = 1; ra <= 5; ra++)
      for (let rb = 1; rb <= 4; rb++) {
        const rc = budget - ra - rb;
        if (rc >= 1 && rc <= 5) top = Math.max(top, f('a', ra) + f('b', rb) + f('c', rc));
      }
    expect(Math.abs(best - top)).toBeLessThan(1e-12 * top);
  });

  it('defaults the curvature to the mean empirical Fisher diagonal, and refuses an impossible budget', () => {
    expect(sum(subloraRanks({ gradients, budget: 5 }).rank_pattern)).toBe(5);
    expect(() => subloraRanks({ gradients, budget: 2 })).toThrow(InvalidArgumentError);
    expect(() => subloraRanks({ gradients, budget: 100 })).toThrow(InvalidArgumentError);
  });
});
