import { Rng } from '@almora/tensor';

/**
 * What a fuzz run saw. `ok` and `typedErrors` are the good outcomes; every other count must stay 0:
 * a `violation` is a load that returned wrong data or allocated absurdly, a `crash` an untyped
 * exception or a dying process, a `hang` a case past its time limit, `dataLost` a killed run whose
 * resume failed or ended differently from an uninterrupted one.
 */
export interface FuzzCounts {
  cases: number;
  ok: number;
  typedErrors: number;
  violations: number;
  crashes: number;
  hangs: number;
  dataLost: number;
  /** Short descriptions of the first few bad cases, for the report. */
  examples: string[];
}

/** How one case ended. */
export type FuzzOutcome = 'ok' | 'typedError' | 'violation' | 'crash' | 'hang' | 'dataLost';

const COUNT: Record<FuzzOutcome, Exclude<keyof FuzzCounts, 'cases' | 'examples'>> = {
  ok: 'ok',
  typedError: 'typedErrors',
  violation: 'violations',
  crash: 'crashes',
  hang: 'hangs',
  dataLost: 'dataLost',
};

const MAX_EXAMPLES = 8;

/** Counts with nothing in them. */
export function emptyCounts(): FuzzCounts {
  return { cases: 0, ok: 0, typedErrors: 0, violations: 0, crashes: 0, hangs: 0, dataLost: 0, examples: [] };
}

/** Adds one case; a bad outcome keeps its description (up to a few, so the report stays short). */
export function tally(counts: FuzzCounts, outcome: FuzzOutcome, description: string): void {
  counts.cases++;
  counts[COUNT[outcome]]++;
  if (outcome !== 'ok' && outcome !== 'typedError' && counts.examples.length < MAX_EXAMPLES) counts.examples.push(`${outcome}: ${description.slice(0, 400)}`);
}

/** Whether any count that must be 0 is not. */
export function hasFailures(counts: FuzzCounts): boolean {
  return counts.violations + counts.crashes + counts.hangs + counts.dataLost > 0;
}

/** The generator of case `index` of a run seeded `seed`: any case can be replayed on its own. */
export function caseRng(seed: number, index: number): Rng {
  return new Rng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
}

/** One of `items`, uniformly. */
export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)];
}
