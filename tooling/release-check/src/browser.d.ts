import type { launchChromium } from '@almora/chromium';

/** A browser context of headless Chromium, as `launchChromium` opens one. */
type BrowserContext = Awaited<ReturnType<typeof launchChromium>>['context'];

/** One example's run in a page: whether it ran to its end, what it printed, its errors, the Node built-ins it asked for. */
export interface PageRun {
  /** The example ran to its end (top-level await included) without an error. */
  done: boolean;
  /** Neither its end nor an error came within the time allowed. */
  timedOut: boolean;
  /** `crossOriginIsolated` in the page. */
  isolated: boolean;
  /** The Node built-ins something in the page imported (each answered by a module that throws). */
  builtins: string[];
  /** The text of each console.log and console.info. */
  output: string[];
  /** Page errors, unhandled rejections and console errors. */
  errors: string[];
  seconds: number;
}
/** The Node built-ins an example imports itself: `import … from`, `import('…')` and `require('…')` with a literal name. */
export function nodeBuiltinsImported(example: string): string[];
/** The page's import map: every Node built-in, with and without `node:`, answered by a module that records its name and throws. */
export function nodeBuiltinImportMap(): { imports: Record<string, string> };
/** Writes the page's entry beside the example in `file`: the example, then the mark that it ran to the end; the entry's path. */
export function writePageEntry(file: string): string;
/** Runs the example in `file` (an ES module) in a new tab of `context`, served cross-origin isolated with the built-ins' import map. */
export function runInPage(context: BrowserContext, file: string, timeoutMs: number): Promise<PageRun>;
/** 'ran', 'skipped' (it failed after asking for a Node built-in) or 'failed', with the reason. */
export function verdict(run: PageRun): { status: 'ran' | 'skipped' | 'failed'; reason: string };
