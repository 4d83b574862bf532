import { expect, it } from 'vitest';
import { docExamples, runExample } from './readme.js';

/**
 * Tests that every `@example` in the package's TSDoc runs as written (no stderr, exit 0, some
 * output), and that exactly `symbols` carry one: an entry losing its example fails the test.
 */
export function testDocExamples(packageRoot, symbols) {
  const examples = docExamples(packageRoot);
  it.each(examples.map((e) => [e.symbol, e]))('the @example of %s runs as written', (_, example) => {
    const run = runExample(packageRoot, example.code);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).not.toBe('');
  });
  it('documents the main entries with an example', () => {
    expect(examples.map((e) => e.symbol).sort()).toEqual([...symbols].sort());
  });
}
