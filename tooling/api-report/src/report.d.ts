/**
 * The declarations `typesFile` exports, one block of text per exported name, sorted by name,
 * without doc comments, `declare`/`export` modifiers or private class members; then a block with
 * the package's own types the exports name without exporting them.
 */
export function exportedDeclarations(typesFile: string): string[];
/** The report of the package in `dir`, from the types file its package.json names. */
export function apiReport(dir: string): string;
/** Where the report of the package in `dir` is committed. */
export function reportFile(dir: string): string;
/** The committed report of the package in `dir` against the regenerated one: their unified diff ('' when equal). */
export function compareReport(dir: string, root: string): { file: string; report: string; diff: string };
/** Every package under `root`/packages that is not private. */
export function publicPackages(root: string): { name: string; dir: string }[];
