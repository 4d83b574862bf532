import type { LanguageModelRun, LanguageModelStep } from '@almora/training';
import { describe, expect, it } from 'vitest';
import { lossCurves } from '../src/finetune.js';

/** A run whose steps scored `bits` per character, held-out scores `validation` where given. */
function run(bits: number[], validation: (number | undefined)[] = [], initial = 3.6): LanguageModelRun {
  const records = bits.map((bitsPerChar, step) => ({ step, bitsPerChar, validationBitsPerChar: validation[step] }) as LanguageModelStep);
  return { initialValidation: initial, finalValidation: validation[bits.length - 1] ?? 0, records } as LanguageModelRun;
}

describe('the fine-tune report’s loss plot', () => {
  it('draws runs that trained bit for bit alike as one curve that says so', () => {
    const same = run([3.4, 3.1, 3.0, 2.9], [undefined, 3.2, undefined, 3.0]);
    const curves = lossCurves(4, [
      { label: 'auto', run: same },
      { label: 'exact', run: run([3.4, 3.1, 3.0, 2.9], [undefined, 3.2, undefined, 3.0]) },
    ]);
    expect(curves.map((c) => c.name)).toEqual([
      'auto = exact (identical): train batch',
      'auto = exact (identical): train batch, average of 5 steps',
      'auto = exact (identical): held-out',
    ]);
    // Raw batches faint behind their moving average; held-out at the start, each evaluation and the end.
    expect(curves[0]).toMatchObject({
      faint: true,
      points: [
        [1, 3.4],
        [2, 3.1],
        [3, 3.0],
        [4, 2.9],
      ],
    });
    expect(curves[1].points.map(([, y]) => y)).toEqual([3.4, 3.25, 3.1666666666666665, 3.1]);
    expect(curves[2].points).toEqual([
      [0, 3.6],
      [2, 3.2],
      [4, 3.0],
    ]);
  });

  it('draws runs that trained apart as their own curves, the second dashed', () => {
    const curves = lossCurves(2, [
      { label: 'auto', run: run([3.4, 3.1], [undefined, 3.0]) },
      { label: 'exact', run: run([3.4, 3.2], [undefined, 3.0]) },
    ]);
    expect(curves.map((c) => c.name)).toEqual([
      'auto: train batch',
      'auto: train batch, average of 5 steps',
      'auto: held-out',
      'exact: train batch',
      'exact: train batch, average of 5 steps',
      'exact: held-out',
    ]);
    expect(curves[1].dashed).toBe(false);
    expect(curves[4].dashed).toBe(true);
  });
});
