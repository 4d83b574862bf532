import type { Suite } from '../harness.js';
import { matmulSuite } from './matmul.js';

/** Every suite, by the name given on the command line. */
export const suites: ReadonlyMap<string, Suite> = new Map([matmulSuite].map((s) => [s.name, s]));
