import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { median } from './stats.js';
import type { Progress } from '@almora/cli-kit';
import type { Backend } from '@almora/tensor';

/** A table cell: numbers are written as they are to JSON and CSV, and formatted for Markdown. */
export type Cell = number | string | boolean | null;

/** One row of a suite's result table. */
export type Row = Record<string, Cell>;

/** What every suite is given. */
export interface SuiteContext {
  /** Reduced sizes that run in seconds (CI, smoke checks). */
  quick: boolean;
  /** Seed of every random input. */
  seed: number;
  /** Repeats of every timing; the median is reported. */
  repeats: number;
  /** Seconds one measurement may be predicted to take before it is skipped with a note. */
  budgetSeconds: number;
  /** The progress bar to advance. */
  progress: Progress;
  /** Where almora's own methods run (`--backend`); the CPU unless asked. */
  backend: Backend;
  /** The registry name `backend` was opened by ('cpu', 'wasm', 'wasm:2', …), for child processes that open their own. */
  backendName: string;
  /** Threads `backend` computes on, so a peer can be given as many. */
  backendThreads: number;
  /** Sequence lengths to run instead of a suite's own (`--lengths`), where the suite takes them. */
  lengths?: number[];
  /** Head dimensions to run instead of a suite's own (`--dims`), where the suite takes them. */
  dims?: number[];
  /** Extra Chromium flags for the browser backends (`--browser-flags`), e.g. to reach a real GPU. */
  browserFlags: string[];
}

/** One SVG plot a suite produced. */
export interface Plot {
  /** File name without extension. */
  name: string;
  /** The SVG text. */
  svg: string;
}

/** Everything a suite reports. */
export interface SuiteReport {
  /** Suite name as given on the command line. */
  suite: string;
  /** Human title. */
  title: string;
  /** Parameters the suite ran with (sizes, degrees, …). */
  parameters: Record<string, Cell | Cell[]>;
  /** The result table; also written as CSV. */
  rows: Row[];
  /** Every raw timing, in seconds, keyed by a row's label. */
  rawTimings: Record<string, number[]>;
  /** Markdown lines stating the findings (ratios, slopes, crossovers), computed from `rows`. */
  findings: string[];
  /** Things the run skipped or could not do, said plainly. */
  notes: string[];
  /** Plots. */
  plots: Plot[];
}

/** What a report records of its measurements, as its JSON keeps them: plots are drawn from this alone. */
export type Recorded = Pick<SuiteReport, 'parameters' | 'rows' | 'rawTimings'>;

/** A benchmark suite: runs with a context and reports. */
export interface Suite {
  name: string;
  title: string;
  run(context: SuiteContext): Promise<SuiteReport>;
  /**
   * The suite's plots from what its report records and nothing else — the one way they are made,
   * by `run` and by `replot`, so saved results can be redrawn by newer plotting code without
   * measuring again. Absent where the suite draws none.
   */
  drawPlots?(recorded: Recorded): Plot[];
}

/** A named piece of work to time. */
export interface TimedMethod {
  name: string;
  run: () => unknown;
}

/**
 * Times `methods` interleaved — each repeat runs every method once, in turn — so that a slow patch
 * of a shared machine hurts every method alike and the ratios between them stay fair. One warm-up
 * call each is not counted. Returns every raw time in seconds, per method.
 */
export function timeInterleaved(methods: readonly TimedMethod[], repeats: number): Map<string, number[]> {
  const times = new Map<string, number[]>(methods.map((m) => [m.name, []]));
  for (const m of methods) m.run();
  for (let r = 0; r < repeats; r++) {
    for (const m of methods) {
      const t0 = performance.now();
      m.run();
      times.get(m.name)!.push((performance.now() - t0) / 1000);
    }
  }
  return times;
}

/** The median of the raw times {@link timeInterleaved} returned for `name`. */
export function medianTime(times: Map<string, number[]>, name: string): number {
  return median(times.get(name)!);
}

/** Facts about the machine and software a result was measured on. */
export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  platform: string;
  node: string;
  versions: Record<string, string>;
  date: string;
}

const requireHere = createRequire(import.meta.url);

async function packageVersion(name: string): Promise<string> {
  try {
    const entry = requireHere.resolve(name);
    let dir = path.dirname(entry);
    while (dir !== path.dirname(dir)) {
      try {
        const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
        if (pkg.name === name) return pkg.version ?? 'unknown';
      } catch {
        // no package.json at this level; keep walking up
      }
      dir = path.dirname(dir);
    }
  } catch {
    return 'not installed';
  }
  return 'unknown';
}

/** Reads the machine and the versions of almora's packages and peers. */
export async function machineInfo(): Promise<MachineInfo> {
  const names = ['@almora/tensor', '@almora/kernels', '@almora/lora', '@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm', 'ml-matrix'];
  const versions: Record<string, string> = {};
  for (const n of names) versions[n] = await packageVersion(n);
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    versions,
    date: new Date().toISOString(),
  };
}

function formatCell(v: Cell): string {
  if (v === null) return '—';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toPrecision(4);
  }
  return String(v);
}

function csvCell(v: Cell): string {
  const s = v === null ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The result table as CSV, columns in first-seen order. */
export function toCsv(rows: readonly Row[]): string {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const lines = [columns.join(',')];
  for (const r of rows) lines.push(columns.map((c) => csvCell(r[c] ?? null)).join(','));
  return `${lines.join('\n')}\n`;
}

/** The result table as a Markdown table. */
export function toMarkdownTable(rows: readonly Row[]): string {
  if (rows.length === 0) return '_no rows_\n';
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const lines = [`| ${columns.join(' | ')} |`, `| ${columns.map(() => '---').join(' | ')} |`];
  for (const r of rows) lines.push(`| ${columns.map((c) => formatCell(r[c] ?? null)).join(' | ')} |`);
  return `${lines.join('\n')}\n`;
}

/** Paths of the files {@link writeReport} wrote. */
export interface WrittenReport extends WrittenSummary {
  json: string;
  csv: string;
}

/** Paths of the files {@link writeSummary} wrote. */
export interface WrittenSummary {
  markdown: string;
  svgs: string[];
}

/** A report as {@link writeReport} saves it in JSON: the machine and command beside it, its plots by name. */
export interface SavedReport extends Omit<SuiteReport, 'plots'> {
  machine: MachineInfo;
  command: string;
  plots: string[];
}

/** When and by which command a summary's plots were drawn again from its JSON. */
export interface Redrawn {
  date: string;
  command: string;
}

/**
 * Writes `<out>/<stem>.json` (machine, parameters, rows, every raw timing), `<stem>.csv`, and the
 * summary ({@link writeSummary}).
 */
export async function writeReport(outDir: string, report: SuiteReport, machine: MachineInfo, command: string, stem = report.suite): Promise<WrittenReport> {
  await mkdir(outDir, { recursive: true });
  const base = path.join(outDir, stem);
  const json = `${base}.json`;
  const csv = `${base}.csv`;
  const saved: SavedReport = { machine, command, ...report, plots: report.plots.map((p) => p.name) };
  // JSON has no Infinity or NaN; write them as strings rather than let them turn into null.
  const keepNonFinite = (_key: string, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? String(value) : value);
  await writeFile(json, `${JSON.stringify(saved, keepNonFinite, 2)}\n`);
  await writeFile(csv, toCsv(report.rows));
  return { json, csv, ...(await writeSummary(outDir, report, machine, command, stem)) };
}

const NON_FINITE: Record<string, number> = { Infinity: Number.POSITIVE_INFINITY, '-Infinity': Number.NEGATIVE_INFINITY, NaN: Number.NaN };

/**
 * A report from the JSON {@link writeReport} saved, with the non-finite numbers it wrote as strings
 * numbers again. Throws a one-line error naming `source` and what is missing when the text is not one.
 */
export function parseSavedReport(text: string, source: string): SavedReport {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, (_key, value: unknown) => (typeof value === 'string' && value in NON_FINITE ? NON_FINITE[value] : value));
  } catch (error) {
    throw new Error(`${source} is not JSON: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const isStrings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string');
  const saved = isObject(parsed) ? parsed : {};
  const machine = saved.machine;
  const checks: Record<string, boolean> = {
    machine:
      isObject(machine) &&
      ['cpu', 'platform', 'node', 'date'].every((k) => typeof machine[k] === 'string') &&
      ['cores', 'memoryGiB'].every((k) => typeof machine[k] === 'number'),
    command: typeof saved.command === 'string',
    suite: typeof saved.suite === 'string',
    title: typeof saved.title === 'string',
    parameters: isObject(saved.parameters),
    rows: Array.isArray(saved.rows) && saved.rows.every(isObject),
    rawTimings: isObject(saved.rawTimings),
    findings: isStrings(saved.findings),
    notes: isStrings(saved.notes),
    plots: isStrings(saved.plots),
  };
  const missing = Object.keys(checks).filter((field) => !checks[field]);
  if (missing.length > 0) throw new Error(`${source} is not a bench report: missing or malformed ${missing.join(', ')}`);
  return saved as unknown as SavedReport;
}

/**
 * Writes `<out>/<stem>.md` (the summary a person reads) and one `<stem>-<plot>.svg` per plot;
 * `redrawn` adds a line saying the plots were drawn again from the JSON, when and how.
 */
export async function writeSummary(
  outDir: string,
  report: SuiteReport,
  machine: MachineInfo,
  command: string,
  stem = report.suite,
  redrawn?: Redrawn,
): Promise<WrittenSummary> {
  await mkdir(outDir, { recursive: true });
  const base = path.join(outDir, stem);
  const markdown = `${base}.md`;
  const svgs: string[] = [];
  for (const plot of report.plots) {
    const file = `${base}-${plot.name}.svg`;
    await writeFile(file, plot.svg);
    svgs.push(file);
  }
  const md = [
    `# ${report.title}`,
    '',
    `Measured ${machine.date.slice(0, 10)} on ${machine.cpu} (${machine.cores} cores, ${machine.memoryGiB} GiB), ${machine.platform}, Node ${machine.node}.`,
    `Reproduce with \`${command}\`. Seed and every raw timing are in \`${stem}.json\`.`,
    ...(redrawn ? [`Plots redrawn ${redrawn.date} from the JSON by \`${redrawn.command}\`.`] : []),
    '',
    '## Findings',
    '',
    ...(report.findings.length > 0 ? report.findings.map((f) => `- ${f}`) : ['- (none computed)']),
    '',
    ...(report.notes.length > 0 ? ['## Notes', '', ...report.notes.map((n) => `- ${n}`), ''] : []),
    ...report.plots.map((p) => `![${p.name}](${stem}-${p.name}.svg)\n`),
    '## Results',
    '',
    toMarkdownTable(report.rows),
  ].join('\n');
  await writeFile(markdown, md);
  return { markdown, svgs };
}
