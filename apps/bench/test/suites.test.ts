import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBench } from '../src/index.js';

async function runQuick(suite: string) {
  const out = await mkdtemp(path.join(os.tmpdir(), `almora-bench-${suite}-`));
  const [result] = await runBench({ suites: [suite], quick: true, out, repeats: 1, quiet: true });
  const json = JSON.parse(await readFile(result.files.json, 'utf8')) as {
    machine: { node: string };
    rows: Record<string, unknown>[];
    rawTimings: Record<string, number[]>;
    findings: string[];
  };
  const csv = await readFile(result.files.csv, 'utf8');
  const md = await readFile(result.files.markdown, 'utf8');
  const svgs = await Promise.all(result.files.svgs.map((f) => readFile(f, 'utf8')));
  return { result, json, csv, md, svgs };
}

describe('bench suites in quick mode', () => {
  it('matmul writes JSON, CSV, Markdown and SVG that agree with each other', async () => {
    const { json, csv, md, svgs } = await runQuick('matmul');
    expect(json.machine.node).toBe(process.version);
    expect(json.rows).toHaveLength(2 * 5);
    for (const row of json.rows) expect(row.gflops as number).toBeGreaterThan(0);
    expect(Object.values(json.rawTimings).every((t) => t.length === 1 && t[0] > 0)).toBe(true);
    expect(csv.trim().split('\n')).toHaveLength(1 + json.rows.length);
    const f64 = json.rows.find((r) => r.n === 128 && r.method === 'almora float64')!.gflops as number;
    const cpu = json.rows.find((r) => r.n === 128 && r.method === 'tfjs-cpu float32')!.gflops as number;
    expect(md).toContain(`almora float64 / tfjs-cpu: ${(f64 / cpu).toFixed(2)}×`);
    expect(json.findings.join('\n')).toContain((f64 / cpu).toFixed(2));
    expect(svgs).toHaveLength(1);
    expect(svgs[0]).toMatch(/^<svg[\s\S]*<\/svg>$/);
  });
});
