/** Tests that every `@example` in the package's TSDoc runs as written, and that exactly `symbols` carry one. */
export function testDocExamples(packageRoot: string, symbols: readonly string[]): void;
