import type { Suite } from '../harness.js';
import { matmulSuite } from './matmul.js';
import { scalingSuite } from './scaling.js';
import { phaseSuite } from './phase.js';
import { approxSuite } from './approx.js';
import { backendsSuite } from './backends.js';
import { memorySuite } from './memory.js';
import { hostileSuite } from './hostile.js';
import { modelSuite } from './model.js';
import { methodsSuite } from './methods.js';

/** Every suite, by the name given on the command line. */
export const suites: ReadonlyMap<string, Suite> = new Map(
  [scalingSuite, phaseSuite, matmulSuite, backendsSuite, approxSuite, memorySuite, hostileSuite, modelSuite, methodsSuite].map((s) => [s.name, s]),
);
