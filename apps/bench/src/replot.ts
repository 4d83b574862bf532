import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseSavedReport, writeSummary, type WrittenSummary } from './harness.js';
import { DEFAULT_OUT } from './run.js';
import { suites } from './suites/index.js';

/** Options of {@link replot}; the command line maps onto these one to one. */
export interface ReplotOptions {
  /** Report stems: `scaling-wasm` for `<out>/scaling-wasm.json`. */
  stems: string[];
  /** The folder the reports are in; default {@link DEFAULT_OUT}. */
  out?: string;
  /** The day the plots are redrawn, as the summary states it; default today (UTC). */
  date?: string;
}

/** One report's redrawn files. */
export interface ReplotResult {
  stem: string;
  files: WrittenSummary;
}

/**
 * Draws the plots of saved reports again with the current code — each suite's `drawPlots` on what
 * its JSON records — and rewrites their SVGs and summaries; the JSON and CSV are left as they are.
 * A suite without plots gets its summary rewritten from the JSON alone. Every stem is read and
 * checked before anything is written.
 */
export async function replot(options: ReplotOptions): Promise<ReplotResult[]> {
  const out = options.out ?? DEFAULT_OUT;
  const date = options.date ?? new Date().toISOString().slice(0, 10);
  const loaded = [];
  for (const stem of options.stems) {
    const file = path.join(out, `${stem}.json`);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      throw new Error(`no saved report "${stem}": ${file} cannot be read`);
    }
    const saved = parseSavedReport(text, file);
    const suite = suites.get(saved.suite);
    if (!suite) throw new Error(`${file} names suite "${saved.suite}", which is not one of ${[...suites.keys()].join(', ')}`);
    const plots = suite.drawPlots?.(saved) ?? [];
    const [drawn, listed] = [plots.map((p) => p.name).join(', '), saved.plots.join(', ')];
    if (drawn !== listed) throw new Error(`${file} lists the plots [${listed}] but its suite now draws [${drawn}] from it: rerun the suite instead`);
    loaded.push({ stem, saved, plots, redrawn: suite.drawPlots ? { date, command: `pnpm bench replot ${stem}` } : undefined });
  }
  const results: ReplotResult[] = [];
  for (const { stem, saved, plots, redrawn } of loaded) {
    const { machine, command, ...report } = saved;
    results.push({ stem, files: await writeSummary(out, { ...report, plots }, machine, command, stem, redrawn) });
  }
  return results;
}
