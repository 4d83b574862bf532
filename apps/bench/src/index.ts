export { runBench, type BenchOptions, type BenchResult } from './run.js';
export { suites } from './suites/index.js';
export {
  timeInterleaved,
  medianTime,
  machineInfo,
  writeReport,
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
} from './harness.js';
export { median, logLogSlope, crossoverLength } from './stats.js';
