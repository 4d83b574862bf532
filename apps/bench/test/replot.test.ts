import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { machineInfo, replot, suites, writeReport, type SuiteReport } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const results = path.resolve(here, '..', 'results');
const cli = path.resolve(here, '..', 'dist', 'cli.js');
const REDRAWN = /^Plots redrawn \d{4}-\d{2}-\d{2} from the JSON by `pnpm bench replot [\w-]+`\.\n/m;

describe('replot', () => {
  it('redraws a saved report from its JSON alone: the same summary with one line more, the same plots, the JSON and CSV untouched', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'almora-replot-'));
    const recorded = {
      parameters: { sizes: [64, 128], repeats: 1, seed: 1 },
      rows: [
        { n: 64, method: 'a', seconds: 1e-4, gflops: 5.2 },
        { n: 128, method: 'a', seconds: 0, gflops: Number.POSITIVE_INFINITY },
        { n: 64, method: 'b', seconds: Number.NaN, gflops: 3 },
        { n: 128, method: 'b', seconds: 1e-3, gflops: 4 },
      ],
      rawTimings: { 'a n=64': [1e-4] },
    };
    const report: SuiteReport = {
      suite: 'matmul',
      title: 'A matmul report',
      ...recorded,
      findings: ['b is slower.'],
      notes: ['Made up.'],
      plots: suites.get('matmul')!.drawPlots!(recorded),
    };
    const written = await writeReport(out, report, await machineInfo(), 'pnpm bench matmul --seed 1');
    const before = await Promise.all([written.json, written.csv, written.markdown, ...written.svgs].map((f) => readFile(f, 'utf8')));
    const [result] = await replot({ stems: ['matmul'], out, date: '2031-02-03' });
    const after = await Promise.all([written.json, written.csv, result.files.markdown, ...result.files.svgs].map((f) => readFile(f, 'utf8')));
    expect(result.files.svgs).toEqual(written.svgs);
    expect(after[0]).toBe(before[0]);
    expect(after[1]).toBe(before[1]);
    const line = 'Plots redrawn 2031-02-03 from the JSON by `pnpm bench replot matmul`.\n';
    expect(after[2]).toContain(line);
    expect(after[2].replace(line, '')).toBe(before[2]);
    expect(after.slice(3)).toEqual(before.slice(3));
    // Replotting again states one redraw, not two.
    await replot({ stems: ['matmul'], out, date: '2031-02-04' });
    expect((await readFile(result.files.markdown, 'utf8')).match(/Plots redrawn/g)).toEqual(['Plots redrawn']);
  });

  it('on a copy of the committed results: every JSON byte for byte, every SVG it names written, every summary the same but for the redraw line', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'almora-replot-results-'));
    await cp(results, out, { recursive: true });
    const stems = (await readdir(out)).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length));
    expect(stems.length).toBeGreaterThan(0);
    const read = (stem: string, ext: string) => readFile(path.join(out, `${stem}.${ext}`), 'utf8');
    const before = new Map(await Promise.all(stems.map(async (stem) => [stem, { json: await read(stem, 'json'), md: await read(stem, 'md') }] as const)));
    const redrawn = await replot({ stems, out });
    for (const { stem, files } of redrawn) {
      const saved = JSON.parse(await read(stem, 'json')) as { plots: string[] };
      expect(await read(stem, 'json'), stem).toBe(before.get(stem)!.json);
      expect(files.svgs.map((f) => path.basename(f))).toEqual(saved.plots.map((name) => `${stem}-${name}.svg`));
      for (const svg of files.svgs) expect(await readFile(svg, 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>$/);
      const strip = (md: string) => md.replace(REDRAWN, '');
      expect(strip(await read(stem, 'md')), stem).toBe(strip(before.get(stem)!.md));
      expect(REDRAWN.test(await read(stem, 'md')), stem).toBe(saved.plots.length > 0);
    }
  });

  it('refuses an unknown stem, a JSON that is not a report and a suite that does not exist, each in one line, before writing anything', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'almora-replot-bad-'));
    await expect(replot({ stems: ['nope'], out })).rejects.toThrow(/^no saved report "nope": .*nope\.json cannot be read$/);
    await writeFile(path.join(out, 'half.json'), JSON.stringify({ suite: 'phase', title: 'x', rows: [] }));
    await expect(replot({ stems: ['half'], out })).rejects.toThrow(
      /half\.json is not a bench report: missing or malformed machine, command, parameters, rawTimings, findings, notes, plots$/,
    );
    await writeFile(path.join(out, 'broken.json'), '{');
    await expect(replot({ stems: ['broken'], out })).rejects.toThrow(/broken\.json is not JSON: /);
    const saved = {
      machine: await machineInfo(),
      command: 'pnpm bench gone',
      suite: 'gone',
      title: 'Gone',
      parameters: {},
      rows: [],
      rawTimings: {},
      findings: [],
      notes: [],
      plots: [],
    };
    await writeFile(path.join(out, 'gone.json'), JSON.stringify(saved));
    await expect(replot({ stems: ['gone'], out })).rejects.toThrow(/gone\.json names suite "gone", which is not one of scaling, /);
    await writeFile(path.join(out, 'renamed.json'), JSON.stringify({ ...saved, suite: 'matmul', plots: ['throughput'] }));
    await expect(replot({ stems: ['renamed'], out })).rejects.toThrow(
      /lists the plots \[throughput\] but its suite now draws \[gflops\] from it: rerun the suite instead$/,
    );
    await writeFile(path.join(out, 'good.json'), JSON.stringify({ ...saved, suite: 'matmul', plots: ['gflops'] }));
    await expect(replot({ stems: ['good', 'nope'], out })).rejects.toThrow(/^no saved report "nope"/);
    expect((await readdir(out)).sort()).toEqual(['broken.json', 'gone.json', 'good.json', 'half.json', 'renamed.json']);
  });

  it('on the command line: an unknown stem is one line on stderr and exit 1; a flag replot does not take is shown with the usage', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'almora-replot-cli-'));
    const unknown = spawnSync(process.execPath, [cli, 'replot', 'nope', '--out', out], { encoding: 'utf8' });
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toBe(`no saved report "nope": ${path.join(out, 'nope.json')} cannot be read\n`);
    const flag = spawnSync(process.execPath, [cli, 'replot', 'phase', '--quick'], { encoding: 'utf8' });
    expect(flag.status).toBe(1);
    expect(flag.stderr).toMatch(/^replot takes only --out, not --quick\nusage: almora-bench .*\n {7}almora-bench replot <stem…> \[--out dir\]\n/);
  });
});
