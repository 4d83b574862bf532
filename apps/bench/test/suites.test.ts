import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pythonModuleMissing } from '@almora/vitest-config/python';
import { parseSavedReport, runBench, suites } from '../src/index.js';

const hasNumpy = pythonModuleMissing('numpy') === undefined;

async function runQuick(suite: string, backend?: string, sizes: { lengths?: number[]; dims?: number[] } = {}) {
  const out = await mkdtemp(path.join(os.tmpdir(), `almora-bench-${suite}-`));
  const [result] = await runBench({ suites: [suite], quick: true, out, repeats: 1, quiet: true, backend, ...sizes });
  const json = JSON.parse(await readFile(result.files.json, 'utf8')) as {
    machine: { node: string };
    rows: Record<string, unknown>[];
    rawTimings: Record<string, number[]>;
    findings: string[];
    notes: string[];
  };
  const csv = await readFile(result.files.csv, 'utf8');
  const md = await readFile(result.files.markdown, 'utf8');
  const svgs = await Promise.all(result.files.svgs.map((f) => readFile(f, 'utf8')));
  // The plots are what the suite draws from its JSON alone, so they can be redrawn without measuring again.
  const saved = parseSavedReport(await readFile(result.files.json, 'utf8'), result.files.json);
  expect(suites.get(suite)!.drawPlots?.(saved) ?? []).toEqual(result.report.plots);
  return { result, json, csv, md, svgs };
}

describe('bench suites in quick mode', () => {
  it('matmul writes JSON, CSV, Markdown and SVG that agree with each other', async () => {
    const { json, csv, md, svgs } = await runQuick('matmul');
    expect(json.machine.node).toBe(process.version);
    expect(json.rows).toHaveLength(2 * 7);
    for (const row of json.rows) expect(row.gflops as number).toBeGreaterThan(0);
    expect(Object.values(json.rawTimings).every((t) => t.length === 1 && t[0] > 0)).toBe(true);
    expect(csv.trim().split('\n')).toHaveLength(1 + json.rows.length);
    const f64 = json.rows.find((r) => r.n === 128 && r.method === 'almora float64')!.gflops as number;
    const cpu = json.rows.find((r) => r.n === 128 && r.method === 'tfjs-cpu float32')!.gflops as number;
    expect(md).toContain(`almora float64 / tfjs-cpu: ${(f64 / cpu).toFixed(2)}×`);
    expect(json.findings.join('\n')).toContain((f64 / cpu).toFixed(2));
    expect(svgs).toHaveLength(1);
    expect(svgs[0]).toMatch(/^<svg[\s\S]*<\/svg>$/);
    const wasm64 = json.rows.find((r) => r.n === 128 && r.method === 'almora wasm float64')!.gflops as number;
    expect(md).toContain(`float64 ${wasm64.toFixed(2)} GFLOP/s = ${(wasm64 / f64).toFixed(2)}× almora's JavaScript float64 (goal ≥ 3×)`);
  });

  it('scaling times every almora method, the tfjs peers and the numpy peer, and its findings match its rows', async () => {
    const { json, md, svgs } = await runQuick('scaling');
    const methods = new Set(json.rows.map((r) => r.method));
    for (const m of [
      'almora exact',
      'almora fast chained g2',
      'almora fast chained g4',
      'almora fast autodiff g2',
      'almora fast autodiff g4',
      'tfjs-wasm autograd',
      'tfjs-cpu autograd',
    ]) {
      expect(methods.has(m)).toBe(true);
    }
    // The layer API on the same problem gives the same gradients: exactly on the exact path, as closely as loraGradients on the fast ones.
    for (const row of json.rows.filter((r) => r.method === 'almora layer exact')) expect(row.relativeGradientError as number).toBeLessThan(1e-12);
    for (const [layer, paper] of [
      ['almora layer fast chained g2', 'almora fast chained g2'],
      ['almora layer fast autodiff g2', 'almora fast autodiff g2'],
    ]) {
      for (const row of json.rows.filter((r) => r.method === layer)) {
        const twin = json.rows.find((r) => r.method === paper && r.L === row.L && r.adaptation === row.adaptation)!;
        expect(Math.abs((row.relativeGradientError as number) - (twin.relativeGradientError as number))).toBeLessThan(1e-9);
      }
    }
    for (const row of json.rows) {
      expect(row.seconds as number).toBeGreaterThan(0);
      if (String(row.method).startsWith('almora fast')) expect(row.relativeGradientError as number).toBeLessThan(0.05);
    }
    const time = (method: string, L: number) => json.rows.find((r) => r.method === method && r.L === L && r.adaptation === 'partial')!.seconds as number;
    const ratio = time('almora exact', 256) / time('almora fast autodiff g2', 256);
    expect(md).toContain(`d=8 partial: almora fast autodiff g2 vs almora exact: ${ratio > 1 ? 'faster' : 'never'}`);
    expect(md).toContain(`at L=256 ${ratio.toFixed(1)}×`);
    expect(md).toMatch(/torch-cpu autograd: PyTorch|PyTorch peer skipped/);
    if (!hasNumpy) expect(md).toContain('numpy peer skipped');
    else {
      // The numpy peer runs almora's algorithms on almora's inputs: its exact gradients are almora's, its fast ones as close as almora's own.
      for (const m of ['numpy exact (blocked)', 'numpy fast chained g2', 'numpy fast autodiff g2']) expect(methods.has(m)).toBe(true);
      for (const row of json.rows.filter((r) => r.method === 'numpy exact (blocked)')) expect(row.relativeGradientError as number).toBeLessThan(1e-12);
      for (const row of json.rows.filter((r) => String(r.method).startsWith('numpy fast'))) expect(row.relativeGradientError as number).toBeLessThan(0.05);
      const numpyRatio = time('almora exact', 256) / time('numpy exact (blocked)', 256);
      expect(md).toContain(`d=8 partial: almora exact / numpy exact (blocked) at L=256: ${numpyRatio.toFixed(2)}× the time`);
      expect(md).toMatch(/numpy rows: numpy [\d.]+ from Debian's python3-numpy, float64, .* BLAS loaded \(read from the peer's memory map\): /);
    }
    expect(svgs).toHaveLength(2);
  });

  it('hostile fuzzes the library (and the train app when built) and every count that must be 0 is 0', async () => {
    const { json, md } = await runQuick('hostile');
    const rows = json.rows as { category: string; cases: number; typedErrors: number; violations: number; crashes: number; hangs: number; dataLost: number }[];
    expect(rows.length).toBeGreaterThanOrEqual(3);
    for (const row of rows) {
      expect(row.cases).toBeGreaterThan(0);
      expect([row.violations, row.crashes, row.hangs, row.dataLost]).toEqual([0, 0, 0, 0]);
    }
    expect(rows.find((r) => r.category.startsWith('hostile library inputs'))!.typedErrors).toBe(
      rows.find((r) => r.category.startsWith('hostile library inputs'))!.cases,
    );
    expect(Number(/; (\d+) fast heads/.exec(rows[0].category)![1])).toBeGreaterThan(0);
    expect(md).toContain('every count that must be 0 is 0');
  }, 300_000);

  it("methods fine-tunes with every LoRA method and rank allocator at plain LoRA's budget and says which beat it, from its rows", async () => {
    const { json, svgs } = await runQuick('methods');
    const { parameters } = json as unknown as { parameters: { methods: string[]; rLimit: number; budgetTolerance: number } };
    const runs = json.rows.filter((r) => r.table === 'run');
    const summaries = json.rows.filter((r) => r.table === 'summary');
    expect(parameters.methods).toEqual(['lora', 'lora-one', 'lora-sb', 'sbora', 'cora', 'lora-pro', 'rac-lora', 'xgblora', 'sr-lora', 'gelora', 'sublora']);
    expect(runs.map((r) => r.method)).toEqual(parameters.methods);
    expect(summaries.map((r) => r.method)).toEqual(parameters.methods);
    for (const row of json.rows)
      for (const value of Object.values(row)) if (typeof value === 'number') expect(Number.isFinite(value), JSON.stringify(row)).toBe(true);
    const findings = json.findings.join('\n');
    // The budget: within ±10% of plain LoRA's count, or r at the largest the weights allow and the findings say the budget is out of reach.
    expect(parameters.budgetTolerance).toBe(0.1);
    const reference = runs[0].trainableParameters as number;
    for (const row of runs) {
      expect(row.lora_alpha).toBe(2 * (row.r as number));
      expect(row.budgetVsLora as number).toBeCloseTo((row.trainableParameters as number) / reference - 1, 12);
      // An allocator keeps the total rank, not the parameter count: its rows say what it trained, the findings name it.
      if (row.rankAllocation !== 'none') {
        expect(row.r).toBe(8);
        expect(findings).toMatch(new RegExp(`Rank allocation: .*${String(row.method)} [\\d,]+ \\([+-][\\d.]+%\\)`));
      } else if (Math.abs(row.budgetVsLora as number) > 0.1) {
        expect(row.r).toBe(parameters.rLimit);
        expect(findings).toMatch(new RegExp(`${String(row.method)} \\([+-][\\d.]+%; r = ${String(row.r)} is the largest the adapted weights allow`));
      }
      expect(row.perplexityAfter as number).toBeCloseTo(2 ** (row.bitsPerCharAfter as number), 9);
      expect(row.fastShare as number).toBeGreaterThanOrEqual(0);
      expect(row.fastShare as number).toBeLessThanOrEqual(1);
    }
    expect(runs[0].perplexityVsLora).toBe(0);
    // Every method other than plain LoRA is named where its rows put it: among those that beat plain LoRA or those that did not.
    const beat = json.findings.find((f) => f.startsWith('Beat plain LoRA'))!;
    const notBeat = json.findings.find((f) => f.startsWith('Did not beat plain LoRA')) ?? '';
    for (const row of summaries.slice(1)) {
      // One seed: beating plain LoRA on every seed is being below it on that one.
      expect(row.beatsLora).toBe((row.meanPerplexityVsLora as number) < 0);
      expect(row.beatsLora ? beat : notBeat).toContain(`${String(row.method)} ${row.beatsLora ? 'by' : '(perplexity'}`);
      if (row.rankAllocation === 'none') expect(findings).toContain(`${String(row.method)} r = ${String(row.r)}, `);
    }
    expect(findings).toContain('stageSteps = max(1, ⌊steps/4⌋) = 1: 3 stages');
    // Every run's training curve is in the rows, step by step, for the curves plot.
    expect(json.rows.filter((r) => r.table === 'step').map((r) => `${String(r.method)} ${String(r.step)}`)).toEqual(
      runs.flatMap((r) => [1, 2, 3].map((step) => `${String(r.method)} ${step}`)),
    );
    expect(json.notes[0]).toContain('these numbers are not the results');
    expect(svgs).toHaveLength(2);
  }, 300_000);

  it('memory measures every case in its own process and states the peak RSS goal', async () => {
    const { json, md } = await runQuick('memory');
    expect(json.notes.filter((n) => n.includes('failed'))).toEqual([]);
    expect(json.rows.length).toBeGreaterThanOrEqual(6);
    for (const row of json.rows) {
      expect(row.peakRssMiB as number).toBeGreaterThan(20);
      expect(row.seconds as number).toBeGreaterThan(0);
    }
    expect(json.rows.find((r) => r.L === 512 && r.method === 'layer exact (probabilities kept within 256 MiB)')!.keptProbabilities).toBe(true);
    expect(json.rows.find((r) => r.L === 512 && r.method === 'layer exact (recompute: probabilityBudget 0)')!.keptProbabilities).toBe(false);
    expect(json.rows.find((r) => r.L === 2048 && r.method === 'layer fast chained g2')!.path).toBe('fast');
    expect(md).toMatch(/Goal: the exact path at L=2,048, d_model=16, 2 heads ran forward \+ backward in [\d.]+ s with peak RSS [\d.]+ GiB/);
  });

  it('phase sweeps Γ and degree and never finds the certified bound below the measured error', async () => {
    const { json, md, svgs } = await runQuick('phase');
    const errors = json.rows.filter((r) => r.table === 'error');
    expect(errors).toHaveLength(3 * 4);
    for (const row of errors) {
      if (typeof row.measuredError === 'number' && row.certifiedGradientBound !== 'Infinity')
        expect(row.certifiedGradientBound as number).toBeGreaterThanOrEqual(row.measuredError);
    }
    const low = errors.find((r) => r.gamma === 0.25 && r.degree === 8)!.measuredError as number;
    const high = errors.find((r) => r.gamma === 3 && r.degree === 8)!.measuredError as number;
    expect(low).toBeLessThan(high);
    const finite = errors.filter((r) => typeof r.certifiedGradientBound === 'number' && Number.isFinite(r.certifiedGradientBound)).length;
    expect(finite).toBeGreaterThan(0);
    expect(md).toContain(`in all ${finite} cases where it was finite`);
    expect(json.rows.filter((r) => r.table === 'variants')).toHaveLength(3 * 4);
    expect(svgs).toHaveLength(3);
  });

  it('approx compares certified polynomial features with FAVOR+ at equal rank', async () => {
    const { json, md } = await runQuick('approx');
    const poly = json.rows.filter((r) => r.method === 'polynomial (Taylor)');
    const favor = json.rows.filter((r) => r.method === 'FAVOR+');
    expect(poly.map((r) => r.rank)).toEqual(favor.map((r) => r.rank));
    const rank15 = poly.find((r) => r.rank === 15)!;
    expect(md).toContain(`rank 15: polynomial error ${(rank15.outputError as number).toExponential(2)}`);
  });

  it('backends runs the same work on every backend here and finds float32-level deviations', async () => {
    const { json, md } = await runQuick('backends');
    const backends = new Set(json.rows.map((r) => r.backend));
    for (const b of ['almora cpu float64', 'almora cpu float32', 'almora wasm simd 1 thread float64', 'gpu.js cpu (Node)', 'gpu.js webasm (Node)'])
      expect(backends.has(b)).toBe(true);
    expect([...backends].filter((b) => /^almora wasm simd \d+ threads? float(32|64)$/.test(String(b)))).toHaveLength(3);
    if (existsSync('/usr/bin/chromium')) {
      expect(backends.has('gpu.js webgl2 (Chromium)')).toBe(true);
      // WebGPU needs an adapter; where Chromium has none the report says so instead.
      expect(backends.has('gpu.js webgpu (Chromium)') || json.notes.includes('gpu.js webgpu: not available in this Chromium')).toBe(true);
    } else expect(json.notes.join('\n')).toMatch(/no Chromium/);
    expect(new Set(json.rows.map((r) => r.work)).size).toBe(6);
    for (const row of json.rows) {
      expect(row.seconds as number).toBeGreaterThan(0);
      expect(row.deviation as number).toBeLessThan(/float64$/.test(String(row.backend)) ? 1e-13 : 1e-5);
    }
    const seconds = (backend: string) => json.rows.find((r) => r.backend === backend && String(r.work).startsWith('matmul'))!.seconds as number;
    expect(md).toContain(`gpu.js webasm (Node) ${(seconds('almora cpu float64') / seconds('gpu.js webasm (Node)')).toFixed(2)}×`);
  });

  it("--backend wasm runs almora's methods on the wasm backend and says so", async () => {
    const { json } = await runQuick('phase', 'wasm');
    expect(json.notes[0]).toMatch(/wasm simd \d+ threads? backend/);
    expect(json.findings.join('\n')).not.toContain('No certified gradient bound was available');
  });

  it('--backend wasm with --lengths and --dims: memory runs its children on wasm, scaling gives numpy as many threads, each written beside the CPU report', async () => {
    const memory = await runQuick('memory', 'wasm', { lengths: [256] });
    expect(path.basename(memory.result.files.markdown)).toBe('memory-wasm.md');
    expect(memory.json.notes.filter((n) => n.includes('failed'))).toEqual([]);
    expect(new Set(memory.json.rows.map((r) => r.L))).toEqual(new Set([256]));
    expect(memory.json.notes[0]).toMatch(/on the wasm simd \d+ threads? backend \(\d+ threads?\)/);
    expect(memory.md).toContain(
      'Reproduce with `pnpm bench memory --quick --seed 1 --repeats 1 --backend wasm --lengths 256`. Seed and every raw timing are in `memory-wasm.json`.',
    );
    const scaling = await runQuick('scaling', 'wasm', { lengths: [128], dims: [4] });
    expect(new Set(scaling.json.rows.map((r) => `${r.d} ${r.L}`))).toEqual(new Set(['4 128']));
    const threads = Number(/on (\d+) threads?, tfjs in float32/.exec(scaling.json.notes[0])?.[1]);
    expect(threads).toBeGreaterThanOrEqual(1);
    if (hasNumpy) expect(scaling.md).toContain(`, ${threads} thread(s).`);
  }, 300_000);

  it("--backend runs almora's methods on gpu.js and says so", async () => {
    const { json } = await runQuick('phase', 'gpu.js:webasm');
    expect(json.notes[0]).toContain('gpu.js webasm backend');
    expect(json.findings.join('\n')).toContain('No certified gradient bound was available (float32 backend)');
    const low = json.rows.find((r) => r.table === 'error' && r.gamma === 0.25 && r.degree === 8)!.measuredError as number;
    expect(low).toBeLessThan(1e-4);
  });
});
