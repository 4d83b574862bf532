#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { replot } from './replot.js';
import { DEFAULT_OUT, runBench } from './run.js';
import { suites } from './suites/index.js';
import { backendNames } from '@almora/backends';

const usage = `usage: almora-bench <suite…|all> [--quick] [--out dir] [--seed n] [--repeats n] [--budget seconds] [--backend name] [--lengths L,L,…] [--dims d,d,…] [--browser-flags "…"] [--quiet]
       almora-bench replot <stem…> [--out dir]
           draws the plots of saved reports (<dir>/<stem>.json, e.g. scaling-wasm) again with the current code and rewrites
           their SVGs and summaries; the JSON is left as it is (dir: default ${DEFAULT_OUT}, where a run writes)
suites: ${[...suites.keys()].join(', ')}
backends (--backend, where almora's methods run in scaling and phase): ${backendNames().join(', ')}`;

/** A mistake in the command line: said with the usage. */
class UsageError extends Error {}

/** A comma-separated list of positive integers, e.g. `--lengths 4096,16384`. */
function positiveIntegers(value: string | undefined, flag: string): number[] | undefined {
  if (value === undefined) return undefined;
  const list = value.split(',').map((part) => Number(part.trim()));
  if (list.length === 0 || list.some((n) => !Number.isSafeInteger(n) || n <= 0))
    throw new UsageError(`${flag} needs positive integers separated by commas, got "${value}"`);
  return list;
}

function positiveNumber(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} needs a positive number, got "${value}"`);
  return n;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      seed: { type: 'string' },
      repeats: { type: 'string' },
      budget: { type: 'string' },
      backend: { type: 'string' },
      lengths: { type: 'string' },
      dims: { type: 'string' },
      'browser-flags': { type: 'string' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length === 0) {
    console.log(usage);
    return;
  }
  if (positionals[0] === 'replot') {
    const others = Object.entries(values).filter(([name, value]) => name !== 'out' && value !== undefined && value !== false);
    if (others.length > 0) throw new UsageError(`replot takes only --out, not ${others.map(([name]) => `--${name}`).join(', ')}`);
    if (positionals.length === 1) throw new UsageError('replot needs the stems of saved reports, e.g. `replot phase scaling-wasm`');
    for (const { stem, files } of await replot({ stems: positionals.slice(1), out: values.out })) {
      console.log(`redrawn ${stem}: ${[files.markdown, ...files.svgs].join(', ')}`);
    }
    return;
  }
  const results = await runBench({
    suites: positionals,
    quick: values.quick,
    out: values.out,
    seed: values.seed === undefined ? undefined : Number(values.seed),
    repeats: positiveNumber(values.repeats, '--repeats'),
    budgetSeconds: positiveNumber(values.budget, '--budget'),
    quiet: values.quiet,
    backend: values.backend,
    lengths: positiveIntegers(values.lengths, '--lengths'),
    dims: positiveIntegers(values.dims, '--dims'),
    browserFlags: values['browser-flags']?.split(/\s+/).filter(Boolean),
  });
  for (const { report, files } of results) {
    console.log(`\n## ${report.title}`);
    for (const f of report.findings) console.log(`- ${f}`);
    for (const n of report.notes) console.log(`- note: ${n}`);
    console.log(`written: ${files.markdown}`);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  // parseArgs' own errors (an unknown option) are command-line mistakes too.
  if (error instanceof UsageError || (error instanceof Error && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) console.error(usage);
  process.exitCode = 1;
});
