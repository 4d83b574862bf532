/** One import statement of an example: its source text, specifier and clause (empty for a side-effect import). */
export interface ImportStatement {
  /** The statement as written. */
  text: string;
  /** What it binds: `{ a, b as c }`, `* as ns`, or '' for a side-effect import. */
  clause: string;
  /** The module it imports. */
  specifier: string;
}
/** Splits an example into its import statements and the rest. */
export function splitImports(example: string): { imports: ImportStatement[]; body: string };
/** The example as a CommonJS script (.cjs): each import a `require`, the rest inside an async function. */
export function toCommonJs(example: string): string;
/** The example as a CommonJS TypeScript file (.cts): the imports as written, the rest inside an async function. */
export function toCommonJsTypeScript(example: string): string;
