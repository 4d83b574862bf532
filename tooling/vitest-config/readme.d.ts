/** The ```ts blocks of a README's text, in order: the examples its tests and the release check run. */
export function readmeExamples(markdown: string): string[];
/** Runs the `which`-th (default the first) ```ts block of `<packageRoot>/<file>` (README.md by default) with Node and returns its output and status. */
export function runReadmeExample(packageRoot: string, file?: string, which?: number): { status: number | null; stdout: string; stderr: string };
/** The `@example` blocks of the TSDoc in `<packageRoot>/src`, with the file and the export each documents. */
export function docExamples(packageRoot: string): { file: string; symbol: string; code: string }[];
/** Runs `code` (plain JavaScript, ES module) with Node from a folder inside the package and returns its output and status. */
export function runExample(packageRoot: string, code: string): { status: number | null; stdout: string; stderr: string };
