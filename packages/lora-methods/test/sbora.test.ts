import { InvalidArgumentError, matmul, randomNormal, Rng, scale } from '@almora/tensor';
import { describe, expect, it } from 'vitest';
import { lora, sbora } from '../src/index.js';

const count = (ps: readonly { size: number }[]) => ps.reduce((n, p) => n + p.size, 0);

describe('SBoRA', () => {
  it('trains exactly half the parameters of plain LoRA on a square module (both variants)', () => {
    const rng = new Rng(3);
    const weight = randomNormal(12, 12, rng);
    const plain = count(lora.init({ weight, r: 4, lora_alpha: 8, rng }).parameters);
    for (const variant of ['FA', 'FB'] as const) expect(2 * count(sbora({ variant }).init({ weight, r: 4, lora_alpha: 8, rng }).parameters)).toBe(plain);
  });

  it('FA: the update is zero outside the r chosen input columns; FB: outside the r chosen output rows', () => {
    const rng = new Rng(4);
    const weight = randomNormal(7, 9, rng);
    for (const variant of ['FA', 'FB'] as const) {
      const indices = variant === 'FA' ? [1, 4, 8] : [0, 5, 6];
      const state = sbora({ variant, indices }).init({ weight, r: 3, lora_alpha: 3, rng });
      for (const p of state.parameters) for (let k = 0; k < p.data.length; k++) p.data[k] = 1 + rng.next();
      const { lora_A, lora_B } = state.adapter();
      const delta = scale(matmul(lora_B, lora_A), state.scaling);
      for (let i = 0; i < 7; i++) {
        for (let j = 0; j < 9; j++) {
          const inside = variant === 'FA' ? indices.includes(j) : indices.includes(i);
          if (inside) expect(delta.get(i, j)).not.toBe(0);
          else expect(delta.get(i, j)).toBe(0);
        }
      }
    }
  });

  it('draws distinct indices from the rng by default, and refuses bad ones', () => {
    const rng = new Rng(5);
    const weight = randomNormal(6, 10, rng);
    const { lora_A } = sbora().init({ weight, r: 4, lora_alpha: 4, rng }).adapter();
    const columns = new Set<number>();
    for (let k = 0; k < 4; k++) for (let j = 0; j < 10; j++) if (lora_A.get(k, j) === 1) columns.add(j);
    expect(columns.size).toBe(4);
    expect(() => sbora({ indices: [1, 1] }).init({ weight, r: 2, lora_alpha: 2, rng })).toThrow(InvalidArgumentError);
    expect(() => sbora({ indices: [1, 10] }).init({ weight, r: 2, lora_alpha: 2, rng })).toThrow(InvalidArgumentError);
    expect(() => sbora({ indices: [1] }).init({ weight, r: 2, lora_alpha: 2, rng })).toThrow(InvalidArgumentError);
  });
});
