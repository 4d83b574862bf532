#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { runBench } from './run.js';
import { suites } from './suites/index.js';
import { backendNames } from '@almora/backends';

const usage = `usage: almora-bench <suite…|all> [--quick] [--out dir] [--seed n] [--repeats n] [--budget seconds] [--backend name] [--lengths L,L,…] [--dims d,d,…] [--browser-flags "…"] [--quiet]
suites: ${[...suites.keys()].join(', ')}
backends (--backend, where almora's methods run in scaling and phase): ${backendNames().join(', ')}`;

/** A comma-separated list of positive integers, e.g. `--lengths 4096,16384`. */
function positiveIntegers(value: string | undefined, flag: string): number[] | undefined {
  if (value === undefined) return undefined;
  const list = value.split(',').map((part) => Number(part.trim()));
  if (list.length === 0 || list.some((n) => !Number.isSafeInteger(n) || n <= 0))
    throw new Error(`${flag} needs positive integers separated by commas, got "${value}"`);
  return list;
}

function positiveNumber(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} needs a positive number, got "${value}"`);
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
  console.error(usage);
  process.exitCode = 1;
});
