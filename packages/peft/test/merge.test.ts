import { add, fromArray, matmul, maxAbs, randomNormal, Rng, scale, sub, toDType, transpose } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { adapterDelta, loraConfig, mergeAdapter, PeftError, PeftShapeError, unmergeAdapter } from '../src/index.js';

describe('merge and unmerge', () => {
  it('W + (lora_alpha / r)·lora_B·lora_A, by hand', () => {
    // r = 1, lora_alpha = 2: scaling 2; lora_B·lora_A = [[1, 2], [3, 6], [0, 0]].
    const adapter = {
      config: loraConfig({ r: 1, lora_alpha: 2, target_modules: ['q'] }),
      modules: { 'a.q': { lora_A: fromArray([[1, 2]]), lora_B: fromArray([[1], [3], [0]]) } },
    };
    const w = fromArray([
      [1, 0],
      [0, 1],
      [5, 5],
    ]);
    const norm = fromArray([[1, 1]]);
    const merged = mergeAdapter({ 'a.q.weight': w, 'a.norm.weight': norm }, adapter);
    expect(merged['a.q.weight'].toArray()).toEqual([
      [3, 4],
      [6, 13],
      [5, 5],
    ]);
    expect(merged['a.norm.weight']).toBe(norm); // weights no adapter touches are passed through
    expect(w.toArray()).toEqual([
      [1, 0],
      [0, 1],
      [5, 5],
    ]); // the input is not changed
    expect(unmergeAdapter(merged, adapter)['a.q.weight'].toArray()).toEqual(w.toArray());
  });

  it('round-trips to float64 rounding on a random model, with rank_pattern, alpha_pattern and use_rslora', () => {
    const rng = new Rng(3);
    const config = loraConfig({
      r: 4,
      lora_alpha: 8,
      target_modules: 'all-linear',
      rank_pattern: { v_proj: 2 },
      alpha_pattern: { 'layers\\.1\\..*': 3 },
      use_rslora: true,
    });
    const shapes: Record<string, [number, number]> = {
      'layers.0.q_proj': [16, 12],
      'layers.0.v_proj': [8, 12],
      'layers.1.q_proj': [16, 12],
      'layers.1.v_proj': [8, 12],
    };
    const weights = Object.fromEntries(Object.entries(shapes).map(([m, [o, i]]) => [`${m}.weight`, randomNormal(o, i, rng)]));
    const modules = Object.fromEntries(
      Object.entries(shapes).map(([m, [o, i]]) => {
        const r = m.endsWith('v_proj') ? 2 : 4;
        return [m, { lora_A: randomNormal(r, i, rng), lora_B: randomNormal(o, r, rng) }];
      }),
    );
    const adapter = { config, modules };
    const merged = mergeAdapter(weights, adapter);
    for (const [m, { lora_A, lora_B }] of Object.entries(modules)) {
      const r = lora_A.rows;
      const alpha = m.startsWith('layers.1.') ? 3 : 8;
      const expected = add(weights[`${m}.weight`], scale(matmul(lora_B, lora_A), alpha / Math.sqrt(r)));
      expect(maxAbs(sub(merged[`${m}.weight`], expected)), m).toBeLessThan(1e-13);
      // The adapted layer's output: x·W'ᵀ = x·Wᵀ + s·(x·lora_Aᵀ)·lora_Bᵀ.
      const x = randomNormal(5, lora_A.cols, rng);
      const unmergedOutput = add(
        matmul(x, weights[`${m}.weight`], { transposeB: true }),
        scale(matmul(matmul(x, lora_A, { transposeB: true }), lora_B, { transposeB: true }), alpha / Math.sqrt(r)),
      );
      expect(maxAbs(sub(matmul(x, merged[`${m}.weight`], { transposeB: true }), unmergedOutput)), m).toBeLessThan(1e-12);
    }
    const back = unmergeAdapter(merged, adapter);
    for (const key of Object.keys(weights)) expect(maxAbs(sub(back[key], weights[key])), key).toBeLessThan(1e-13);
  });

  it('keeps a float32 weight float32, and adds the update transposed for fan_in_fan_out (weight in×out)', () => {
    const rng = new Rng(4);
    const lora = { lora_A: randomNormal(2, 3, rng), lora_B: randomNormal(5, 2, rng) };
    const plain = { config: loraConfig({ r: 2, lora_alpha: 4, target_modules: ['c'] }), modules: { 'h.c': lora } };
    const w32 = toDType(randomNormal(5, 3, rng), 'float32');
    expect(mergeAdapter({ 'h.c.weight': w32 }, plain)['h.c.weight'].dtype).toBe('float32');
    const conv = { ...plain, config: { ...plain.config, fan_in_fan_out: true } };
    const w = randomNormal(3, 5, rng);
    expect(maxAbs(sub(mergeAdapter({ 'h.c.weight': w }, conv)['h.c.weight'], add(w, transpose(scale(matmul(lora.lora_B, lora.lora_A), 2)))))).toBeLessThan(
      1e-14,
    );
    expect(adapterDelta(conv, 'h.c').shape).toEqual([3, 5]);
  });

  it('refuses a missing or misshapen weight with a typed error', () => {
    const adapter = {
      config: loraConfig({ r: 1, lora_alpha: 1, target_modules: ['q'] }),
      modules: { 'a.q': { lora_A: fromArray([[1, 2]]), lora_B: fromArray([[1], [3]]) } },
    };
    expect(() => mergeAdapter({}, adapter)).toThrow(PeftError);
    expect(() => mergeAdapter({}, adapter)).toThrow(/the weights have no a\.q\.weight/);
    expect(() => unmergeAdapter({ 'a.q.weight': fromArray([[1, 2]]) }, adapter)).toThrow(PeftShapeError);
    expect(() => adapterDelta(adapter, 'a.k')).toThrow(/no module a\.k/);
  });
});
