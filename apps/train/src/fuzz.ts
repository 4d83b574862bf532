/**
 * The fuzz and property suite of issue #12: hostile adapter folders for importPeft, hostile
 * invocations of `almora train`, and SIGKILL-then-resume loops. Each function is seeded and
 * returns {@link FuzzCounts}; the good outcomes are `ok` and `typedErrors`, every other count
 * must be 0.
 */
export { type FuzzCounts, type FuzzOutcome, emptyCounts, hasFailures } from './fuzz-counts.js';
export { fuzzAdapters, type AdapterFuzzOptions } from './fuzz-adapters.js';
export { fuzzCli, type CliFuzzOptions } from './fuzz-train-cli.js';
export { fuzzKillResume, type KillResumeOptions } from './fuzz-resume.js';
