import { describe, expect, it } from 'vitest';
import { add, InvalidArgumentError, matmul, type Matrix, Rng, zeros } from '@almora/tensor';
import { QWEN3_MODULES, qwen3ForCausalLM, type Qwen3Model, type Qwen3Module, qwen3ModulePath, type Qwen3Options } from '../src/index.js';
import { linearForward } from '../src/linear.js';
import { rmsNorm } from '../src/rms-norm.js';
import { rotary, rotaryTables } from '../src/rotary.js';
import { swiglu } from '../src/swiglu.js';
import { checkAll, FD_TOLERANCE, mismatch, randomIds, randomModel, tinyConfig } from './models.js';

/**
 * S²-Attn's mask, written out: query head h at position i may attend to position j ≤ i when both
 * are in one group — [jG, (j+1)G) for the first half of the heads, the groups shifted by G/2
 * (no wrap-around) for the second; every j ≤ i without G.
 */
function allowed(head: number, heads: number, i: number, j: number, groupSize: number | undefined): boolean {
  if (j > i) return false;
  if (groupSize === undefined) return true;
  const shift = head < heads / 2 ? 0 : groupSize / 2;
  return Math.floor((i + shift) / groupSize) === Math.floor((j + shift) / groupSize);
}

/**
 * A dense reference forward of one sequence: the decoder written out step by step, its attention
 * a softmax over the allowed positions only (explicit loops, no attention core).
 */
function referenceLogits(model: Qwen3Model, ids: readonly number[], groupSize: number | undefined): Matrix {
  const c = model.config;
  const [d, heads, L] = [c.head_dim, c.num_attention_heads, ids.length];
  const groups = heads / c.num_key_value_heads;
  const w = (key: string) => model.weights[key];
  const lora = model.lora!;
  const lin = (x: Matrix, l: number, module: Qwen3Module) =>
    linearForward(x, w(`${qwen3ModulePath(l, module)}.weight`), { weights: lora.adapters[qwen3ModulePath(l, module)], scaling: lora.lora_alpha / lora.r }).y;
  const tables = rotaryTables(
    ids.map((_, i) => i),
    d,
    c.rope_theta,
  );
  let h = zeros(L, c.hidden_size);
  ids.forEach((id, i) => h.data.set(w('model.embed_tokens.weight').row(id), i * c.hidden_size));
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const prefix = `model.layers.${l}`;
    const a = rmsNorm(h, w(`${prefix}.input_layernorm.weight`), c.rms_norm_eps).y;
    const q = rotary(rmsNorm(lin(a, l, 'q_proj'), w(`${prefix}.self_attn.q_norm.weight`), c.rms_norm_eps).y, tables);
    const k = rotary(rmsNorm(lin(a, l, 'k_proj'), w(`${prefix}.self_attn.k_norm.weight`), c.rms_norm_eps).y, tables);
    const v = lin(a, l, 'v_proj');
    const o = zeros(L, heads * d);
    for (let head = 0; head < heads; head++) {
      const kv = Math.floor(head / groups) * d;
      for (let i = 0; i < L; i++) {
        const js = Array.from({ length: L }, (_, j) => j).filter((j) => allowed(head, heads, i, j, groupSize));
        const scores = js.map((j) => {
          let s = 0;
          for (let t = 0; t < d; t++) s += q.get(i, head * d + t) * k.get(j, kv + t);
          return s / Math.sqrt(d);
        });
        const max = Math.max(...scores);
        const p = scores.map((s) => Math.exp(s - max));
        const total = p.reduce((x, y) => x + y, 0);
        for (let t = 0; t < d; t++)
          o.set(
            i,
            head * d + t,
            js.reduce((sum, j, n) => sum + (p[n] / total) * v.get(j, kv + t), 0),
          );
      }
    }
    const h1 = add(h, lin(o, l, 'o_proj'));
    const b = rmsNorm(h1, w(`${prefix}.post_attention_layernorm.weight`), c.rms_norm_eps).y;
    h = add(h1, lin(swiglu(lin(b, l, 'gate_proj'), lin(b, l, 'up_proj')), l, 'down_proj'));
  }
  const head = w('lm_head.weight') ?? w('model.embed_tokens.weight');
  return matmul(rmsNorm(h, w('model.norm.weight'), c.rms_norm_eps).y, head, { transposeB: true });
}

function logitsOf(model: Qwen3Model, ids: number[][], options: Qwen3Options): Matrix[] {
  const result = qwen3ForCausalLM(model, ids, options);
  result.dispose();
  return result.logits;
}

describe('shifted sparse attention (LongLoRA S²-Attn)', () => {
  it('the forward equals a dense reference with the explicit block mask (GQA, LoRA on every module, a batch, several G)', () => {
    const rng = new Rng(31);
    const model = randomModel(tinyConfig(), rng, QWEN3_MODULES);
    const ids = randomIds(11, [13, 6, 3, 9], rng);
    for (const groupSize of [2, 4, 6]) {
      const logits = logitsOf(model, ids, { method: 'exact', shiftedSparseAttention: { groupSize } });
      ids.forEach((seq, n) => expect(mismatch(logits[n], referenceLogits(model, seq, groupSize)), `G = ${groupSize}, sequence ${n}`).toBeLessThan(1e-12));
    }
    // The reference's full causal attention is the model's (the reference itself is right), and S²-Attn with G < L is not it.
    const full = logitsOf(model, ids, { method: 'exact' });
    expect(mismatch(full[0], referenceLogits(model, ids[0], undefined))).toBeLessThan(1e-12);
    expect(mismatch(full[0], referenceLogits(model, ids[0], 4))).toBeGreaterThan(1e-3);
  });

  it("each layer's report lists the groups as the core's sequences; 'fast' and 'auto' run on them", () => {
    const rng = new Rng(32);
    const model = randomModel(tinyConfig(), rng, ['q_proj', 'v_proj']);
    const ids = randomIds(11, [13], rng);
    const result = qwen3ForCausalLM(model, ids, { method: 'exact', shiftedSparseAttention: { groupSize: 4 } });
    result.dispose();
    const { blocks, attention } = result.layers[0];
    const spans = (firstHead: number) => blocks!.filter((b) => b.firstHead === firstHead).map((b) => [b.start, b.start + b.length]);
    expect(spans(0)).toEqual([
      [0, 4],
      [4, 8],
      [8, 12],
      [12, 13],
    ]);
    expect(spans(2)).toEqual([
      [0, 2],
      [2, 6],
      [6, 10],
      [10, 13],
    ]);
    expect(blocks!.every((b) => b.sequence === 0 && b.heads === 2)).toBe(true);
    expect(attention.heads).toHaveLength(blocks!.length * 2);
    expect(attention.threshold).toBeCloseTo(Math.sqrt(Math.log(4)), 12);
    expect(qwen3ForCausalLM(model, ids, { method: 'exact' }).layers[0].blocks).toBeUndefined();
    for (const method of ['fast', 'auto'] as const) {
      const run = qwen3ForCausalLM(model, ids, { method, epsilon: 1e-3, shiftedSparseAttention: { groupSize: 4 } });
      expect(run.layers[0].attention.heads).toHaveLength(blocks!.length * 2);
      expect(Number.isFinite(run.loss)).toBe(true);
      const { lora } = run.backward();
      expect(Object.keys(lora)).toHaveLength(4);
    }
  });

  it('with G ≥ 2·L every group is the whole sequence: the loss, logits and gradients of full causal attention', () => {
    const rng = new Rng(33);
    const model = randomModel(tinyConfig(), rng);
    const ids = randomIds(11, [7, 5], rng);
    const full = qwen3ForCausalLM(model, ids, { method: 'exact', weightGradients: true });
    const s2 = qwen3ForCausalLM(model, ids, { method: 'exact', weightGradients: true, shiftedSparseAttention: { groupSize: 14 } });
    expect(Math.abs(s2.loss - full.loss)).toBeLessThan(1e-13);
    s2.logits.forEach((m, n) => expect(mismatch(m, full.logits[n])).toBeLessThan(1e-13));
    const [a, b] = [s2.backward(), full.backward()];
    for (const key of Object.keys(b.weights!)) expect(mismatch(a.weights![key], b.weights![key]), key).toBeLessThan(1e-12);
    for (const path of Object.keys(b.lora)) expect(mismatch(a.lora[path].lora_A, b.lora[path].lora_A), path).toBeLessThan(1e-12);
  });

  it('every LoRA and weight gradient passes the central-difference check (G = 4, GQA, a batch of 2)', () => {
    const rng = new Rng(34);
    const model = randomModel(tinyConfig(), rng);
    expect(checkAll(model, randomIds(11, [10, 7], rng), { method: 'exact', shiftedSparseAttention: { groupSize: 4 } }, rng)).toBeLessThan(FD_TOLERANCE);
  });

  it('refuses G < 2, odd or non-integer, and an odd number of heads', () => {
    const rng = new Rng(35);
    const model = randomModel(tinyConfig({ num_hidden_layers: 1 }), rng, ['q_proj']);
    const ids = randomIds(11, [6], rng);
    for (const groupSize of [0, 1, 3, 2.5, -2, NaN, '4' as unknown as number]) {
      expect(() => qwen3ForCausalLM(model, ids, { shiftedSparseAttention: { groupSize } }), String(groupSize)).toThrow(InvalidArgumentError);
    }
    expect(() => qwen3ForCausalLM(model, ids, { shiftedSparseAttention: null as unknown as { groupSize: number } })).toThrow(InvalidArgumentError);
    const odd = randomModel(tinyConfig({ num_hidden_layers: 1, num_attention_heads: 3, num_key_value_heads: 1 }), rng, ['q_proj']);
    expect(() => qwen3ForCausalLM(odd, ids, { shiftedSparseAttention: { groupSize: 2 } })).toThrow(/num_attention_heads must be even/);
    expect(() => qwen3ForCausalLM(odd, ids, {}).dispose()).not.toThrow();
  });
});
