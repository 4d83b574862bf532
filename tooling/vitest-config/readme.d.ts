/** The ```ts blocks of a README's text, in order: the examples its tests and the release check run. */
export function readmeExamples(markdown: string): string[];
/** Runs the `which`-th (default the first) ```ts block of `<packageRoot>/<file>` (README.md by default) with Node and returns its output and status. */
export function runReadmeExample(packageRoot: string, file?: string, which?: number): { status: number | null; stdout: string; stderr: string };
