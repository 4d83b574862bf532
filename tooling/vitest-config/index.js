import { defineConfig } from 'vitest/config';

/**
 * The vitest settings every almora package shares: node environment, tests in test/,
 * a generous timeout because the numerical property tests run thousands of cases on a
 * small shared machine.
 */
export const almoraVitestConfig = defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // The JSON report lets the root `pnpm test` print one total for the whole repository.
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
  },
});

export default almoraVitestConfig;
