export { runBench, DEFAULT_OUT, type BenchOptions, type BenchResult } from './run.js';
export { replot, type ReplotOptions, type ReplotResult } from './replot.js';
export { suites } from './suites/index.js';
export {
  timeInterleaved,
  medianTime,
  machineInfo,
  writeReport,
  parseSavedReport,
  toCsv,
  toMarkdownTable,
  type Cell,
  type Row,
  type Suite,
  type SuiteContext,
  type SuiteReport,
  type Plot,
  type TimedMethod,
  type MachineInfo,
  type WrittenReport,
  type WrittenSummary,
  type SavedReport,
  type Recorded,
} from './harness.js';
export { median, logLogSlope, crossoverLength } from './stats.js';
