import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { testDocExamples } from '@almora/vitest-config/examples';

testDocExamples(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'), ['attention', 'loraAttention', 'loraGradients', 'syntheticProblem']);
