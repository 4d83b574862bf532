import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSavedReport, runBench, suites } from '../src/index.js';
import { autoPlan, finetuneFindings, perplexity, perplexityChange, phaseGoal, phaseShape, type PhaseCell } from '../src/suites/model.js';

const cell = (overrides: Partial<PhaseCell>): PhaseCell => ({
  headDim: 8,
  cap: undefined,
  L: 2048,
  bitsPerChar: 2,
  perplexityGap: 0,
  gamma: 1,
  path: 'exact',
  degree: undefined,
  rank: undefined,
  exactSeconds: 1,
  autoSeconds: 1,
  ...overrides,
});

const layer = (chosen: 'exact' | 'fast' | 'mixed', gamma: number, degree?: number, rank?: number) =>
  ({ attention: { chosen, gamma, degree, rank, reason: `${chosen} at Γ = ${gamma}` } }) as unknown as Parameters<typeof autoPlan>[0][number];

describe('the model suite', () => {
  it('turns bits per character into perplexity and its relative change', () => {
    expect(perplexity(3)).toBe(8);
    expect(perplexityChange(3, 2)).toBeCloseTo(-0.5, 12);
    expect(perplexityChange(2, 2)).toBe(0);
  });

  it("part B's shape: hidden 64, 64/head_dim query heads, half as many key/value heads", () => {
    expect([phaseShape(8).num_attention_heads, phaseShape(8).num_key_value_heads, phaseShape(8).hidden_size]).toEqual([8, 4, 64]);
    expect([phaseShape(16).num_attention_heads, phaseShape(16).num_key_value_heads]).toEqual([4, 2]);
  });

  it("reads 'auto''s plan from the layers' reports: degree and rank only where a layer ran fast", () => {
    expect(autoPlan([layer('exact', 1.2, 4, 495), layer('exact', 0.9)])).toMatchObject({
      path: 'exact',
      degree: undefined,
      rank: undefined,
      gamma: 1.2,
      reason: 'exact at Γ = 1.2',
    });
    expect(autoPlan([layer('fast', 0.5, 3, 165), layer('exact', 0.9, 6, 3003)])).toMatchObject({
      path: 'layer 0 fast, layer 1 exact',
      degree: 3,
      rank: 165,
      gamma: 0.9,
    });
  });

  it('states the fine-tune checks as met or NOT met from the numbers', () => {
    const lines = finetuneFindings(3, [
      { label: 'exact', bitsPerChar: 2.8, medianStepSeconds: 2, fastHeadShare: 0 },
      { label: 'auto', bitsPerChar: 2.81, medianStepSeconds: 1, fastHeadShare: 0.5 },
      { label: 'S²-Attn', bitsPerChar: 2.9, medianStepSeconds: 1, fastHeadShare: 0 },
    ]);
    expect(lines[0]).toContain(`is ${(100 * perplexityChange(3, 2.8)).toFixed(1)}% vs the base's`);
    expect(lines[0]).toMatch(/: met\.$/);
    expect(lines[1]).toContain('(target: within 1%): met');
    expect(lines[1]).toContain('fast path in 50% of head-steps');
    expect(lines[2]).toContain('2.00× as fast as exact');
    expect(lines[2]).toContain('it wins on speed, full exact attention on quality');
    expect(
      finetuneFindings(3, [
        { label: 'exact', bitsPerChar: 2.99, medianStepSeconds: 1, fastHeadShare: 0 },
        { label: 'auto', bitsPerChar: 3.1, medianStepSeconds: 1, fastHeadShare: 0 },
      ])[0],
    ).toMatch(/NOT met\.$/);
  });

  it('meets the phase goal only with a fast path ≥ 2× within 5% of the uncapped perplexity, and otherwise says how far off', () => {
    const uncapped = cell({});
    const noisyExact = cell({ cap: 1, exactSeconds: 3, autoSeconds: 1 });
    expect(phaseGoal([uncapped, noisyExact])).toMatch(/^Goal \(phase diagram\): NOT met/);
    const fastButWorse = cell({ cap: 0.5, path: 'fast', degree: 2, rank: 45, perplexityGap: 0.2, exactSeconds: 4, autoSeconds: 1 });
    const fastWithin = cell({ cap: 1, path: 'fast', degree: 4, rank: 495, perplexityGap: 0.03, exactSeconds: 1.5, autoSeconds: 1 });
    const missed = phaseGoal([uncapped, fastWithin, fastButWorse]);
    expect(missed).toContain('the best speedup within 5% of the uncapped perplexity is 1.50× (head_dim 8, cap 1, L = 2048');
    expect(missed).toContain('1.33× short of 2×');
    expect(missed).toContain('the fastest cell, head_dim 8, cap 0.5, L = 2048 at 4.00×');
    expect(missed).toContain('+20.0% in perplexity');
    const winner = cell({ cap: 2, path: 'fast', degree: 3, rank: 165, perplexityGap: 0.01, exactSeconds: 2.5, autoSeconds: 1 });
    expect(phaseGoal([uncapped, fastWithin, fastButWorse, winner])).toBe(
      "Goal (phase diagram): met — head_dim 8, cap 2, L = 2048: 'auto' (fast, degree 3, rank 165) ran forward + backward 2.50× as fast as exact with perplexity +1.0% vs the uncapped model (1 such cell(s) of 4).",
    );
  });

  it('runs in quick mode: both tables, findings computed from its rows, two plots, and says its numbers are not the results', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'almora-bench-model-'));
    const [result] = await runBench({ suites: ['model'], quick: true, out, quiet: true });
    const json = JSON.parse(await readFile(result.files.json, 'utf8')) as {
      rows: Record<string, unknown>[];
      rawTimings: Record<string, number[]>;
      findings: string[];
      notes: string[];
    };
    const finetune = json.rows.filter((r) => r.table === 'finetune');
    expect(finetune.map((r) => r.run)).toEqual(['base', 'exact', 'auto', 'S²-Attn (groups of 64, exact)']);
    for (const row of finetune) expect(row.perplexity as number).toBeCloseTo(2 ** (row.heldOutBitsPerChar as number), 9);
    expect(json.rawTimings['finetune exact']).toHaveLength(finetune[1].steps as number);
    const phase = json.rows.filter((r) => r.table === 'phase');
    expect(phase.map((r) => `${r.cap} ${r.L}`)).toEqual(['none 256', 'none 512', '0.5 256', '0.5 512']);
    for (const row of phase) {
      expect(row.speedup as number).toBeCloseTo((row.exactSeconds as number) / (row.autoSeconds as number), 9);
      expect(row.gamma as number).toBeGreaterThan(0);
      if (row.cap === '0.5') expect(row.gamma as number).toBeLessThanOrEqual(0.5 * 16 ** 0.25 + 1e-9);
    }
    expect(json.findings.filter((f) => f.startsWith('Check (fine-tune)'))).toHaveLength(2);
    expect(json.findings.some((f) => f.startsWith('Goal (phase diagram)'))).toBe(true);
    expect(json.notes[0]).toContain('these numbers are not the results');
    expect(result.files.svgs.map((f) => path.basename(f))).toEqual(['model-speedup.svg', 'model-perplexity.svg']);
    // The plots are what the suite draws from its JSON alone, so they can be redrawn without measuring again.
    expect(suites.get('model')!.drawPlots!(parseSavedReport(await readFile(result.files.json, 'utf8'), result.files.json))).toEqual(result.report.plots);
  }, 300_000);
});
