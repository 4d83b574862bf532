import { machineInfo, writeReport, type SuiteReport, type WrittenReport } from './harness.js';
import { Progress } from '@almora/cli-kit';
import { suites } from './suites/index.js';
import { openBackend } from '@almora/backends';

/** Where a run writes its reports unless told otherwise (relative to the working directory). */
export const DEFAULT_OUT = 'out';

/** Options of one bench run; the command line maps onto these one to one. */
export interface BenchOptions {
  /** Suite names, or ['all']. */
  suites: string[];
  /** Reduced sizes for CI and smoke checks. */
  quick?: boolean;
  /** Output folder; default {@link DEFAULT_OUT}. */
  out?: string;
  /** Seed of every random input; default 1. */
  seed?: number;
  /** Timing repeats (median reported); default 5, or 3 with quick. */
  repeats?: number;
  /** Seconds a single measurement may be predicted to take before it is skipped; default 60, or 5 with quick. */
  budgetSeconds?: number;
  /** No progress bar. */
  quiet?: boolean;
  /** Where almora's methods run in the scaling and phase suites: a name of @almora/backends' registry — `cpu` (default), `wasm`, `wasm:N`, `gpu.js:<mode>`. */
  backend?: string;
  /** Extra Chromium flags for the backends suite's browser measurements. */
  browserFlags?: string[];
  /** Sequence lengths for the suites that sweep them (scaling, memory) instead of their own. */
  lengths?: number[];
  /** Head dimensions for the scaling suite instead of its own. */
  dims?: number[];
}

/** One suite's report and the files it was written to. */
export interface BenchResult {
  report: SuiteReport;
  files: WrittenReport;
}

/** The threads a backend computes on: the wasm backend says (`threads`); the others compute on one CPU thread or on a device. */
function threadsOf(backend: object): number {
  return 'threads' in backend && typeof backend.threads === 'number' ? backend.threads : 1;
}

/** Runs the named suites in order and writes their reports. */
export async function runBench(options: BenchOptions): Promise<BenchResult[]> {
  const names = options.suites.includes('all') ? [...suites.keys()] : options.suites;
  for (const name of names) {
    if (!suites.has(name)) throw new Error(`unknown suite "${name}"; choose from ${[...suites.keys()].join(', ')} or all`);
  }
  const quick = options.quick ?? false;
  const backendName = options.backend ?? 'cpu';
  const opened = await openBackend(backendName);
  const context = {
    quick,
    seed: options.seed ?? 1,
    repeats: options.repeats ?? (quick ? 3 : 5),
    budgetSeconds: options.budgetSeconds ?? (quick ? 5 : 60),
    progress: new Progress(options.quiet),
    backend: opened.backend,
    backendName,
    backendThreads: threadsOf(opened.backend),
    browserFlags: options.browserFlags ?? [],
    lengths: options.lengths,
    dims: options.dims,
  };
  const machine = await machineInfo();
  const out = options.out ?? DEFAULT_OUT;
  const results: BenchResult[] = [];
  const flags = [
    quick ? ' --quick' : '',
    ` --seed ${context.seed}`,
    options.repeats ? ` --repeats ${context.repeats}` : '',
    options.budgetSeconds ? ` --budget ${context.budgetSeconds}` : '',
    options.backend && options.backend !== 'cpu' ? ` --backend ${options.backend}` : '',
    context.browserFlags.length > 0 ? ` --browser-flags "${context.browserFlags.join(' ')}"` : '',
    options.lengths ? ` --lengths ${options.lengths.join(',')}` : '',
    options.dims ? ` --dims ${options.dims.join(',')}` : '',
  ].join('');
  // Another backend's results sit beside the CPU's (scaling-wasm.md) instead of replacing them.
  const stem = (suite: string) => (backendName === 'cpu' ? suite : `${suite}-${backendName.replace(/[^a-z0-9]+/gi, '-')}`);
  try {
    for (const name of names) {
      const report = await suites.get(name)!.run(context);
      results.push({ report, files: await writeReport(out, report, machine, `pnpm bench ${name}${flags}`, stem(report.suite)) });
    }
  } finally {
    opened.close();
  }
  return results;
}
