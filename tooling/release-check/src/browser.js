// The README examples in a real browser (#16): each example's browser bundle, from the installed
// tarballs, runs as the module script of a cross-origin-isolated page in headless Chromium, and
// passes when it ran to the end, printed something, and raised no error, console error or unhandled
// rejection. An example that cannot run in a browser by nature is skipped with the reason, found
// mechanically: it imports a Node built-in itself (seen in its source), or it failed after reaching
// for one at run time (a package's Node-only export, e.g. a folder reader, imports `node:fs/promises`
// by a name bundlers do not follow; the page's import map answers every built-in with a module that
// records the name and throws, as the browser would).
import { writeFileSync } from 'node:fs';
import { builtinModules, isBuiltin } from 'node:module';
import path from 'node:path';
import { servePage } from '@almora/chromium';
import { splitImports } from './commonjs.js';

/** Where the page records the Node built-ins something asked for. */
const RECORD = 'almoraNodeBuiltins';
/** What the page's entry sets once the example has run to its end. */
const DONE = 'almoraExampleDone';

/** The Node built-ins an example imports itself: `import … from`, `import('…')` and `require('…')` with a literal name. */
export function nodeBuiltinsImported(example) {
  const literal = [...example.matchAll(/\b(?:import|require)\(\s*(['"])([^'"\n]+)\1\s*\)/g)].map((match) => match[2]);
  const specifiers = [...splitImports(example).imports.map((entry) => entry.specifier), ...literal];
  return [...new Set(specifiers.filter((specifier) => isBuiltin(specifier)))];
}

/** A module that records `name` as asked for and throws, as importing it in a browser does. */
function refusal(name) {
  const source = `(globalThis.${RECORD} ??= []).push(${JSON.stringify(name)});\nthrow new TypeError(${JSON.stringify(`${name} is a Node built-in: a browser has no such module`)});\n`;
  return `data:text/javascript,${encodeURIComponent(source)}`;
}

/** The page's import map: every Node built-in, with and without `node:`, answered by its refusal. */
export function nodeBuiltinImportMap() {
  const names = builtinModules.flatMap((name) => (name.startsWith('node:') ? [name] : [name, `node:${name}`]));
  return { imports: Object.fromEntries(names.map((name) => [name, refusal(name)])) };
}

/** The page's entry for the example in `file`: the example, then the mark that it ran to the end (top-level await included). */
export function writePageEntry(file) {
  const entry = file.replace(/\.mjs$/, '.page.mjs');
  writeFileSync(entry, `import './${path.basename(file)}';\nglobalThis.${DONE} = true;\n`);
  return entry;
}

/**
 * Runs the example in `file` (an ES module) in a new tab of `context`: its bundle served with the
 * COOP/COEP headers and the built-ins' import map. Resolves once the example ran to its end, an
 * error came, or `timeoutMs` passed, with what it printed, its errors, the built-ins it asked for,
 * and whether the page was cross-origin isolated.
 */
export async function runInPage(context, file, timeoutMs) {
  const started = Date.now();
  const page = await servePage(writePageEntry(file), { isolated: true, importMap: nodeBuiltinImportMap() });
  const tab = await context.newPage();
  const output = [];
  const errors = [];
  let failed = () => {};
  const failure = new Promise((resolve) => (failed = resolve));
  const error = (text) => {
    errors.push(text);
    failed(false);
  };
  tab.on('console', (message) => {
    if (message.type() === 'error') error(`console.error: ${message.text()}`);
    else if (message.type() === 'log' || message.type() === 'info') output.push(message.text());
  });
  tab.on('pageerror', (thrown) => error(thrown.stack ?? thrown.message));
  try {
    await tab.goto(page.url);
    const finished = tab
      .waitForFunction((done) => globalThis[done] === true, DONE, { timeout: timeoutMs, polling: 50 })
      .then(
        () => true,
        () => false,
      );
    const done = (await Promise.race([finished, failure])) && errors.length === 0;
    const timedOut = !done && errors.length === 0;
    // A page stuck past the timeout may not answer; one that ended or threw does.
    const state = timedOut
      ? { isolated: false, builtins: [] }
      : await tab.evaluate(([record]) => ({ isolated: globalThis.crossOriginIsolated, builtins: globalThis[record] ?? [] }), [RECORD]);
    return { done, timedOut, ...state, output, errors, seconds: (Date.now() - started) / 1000 };
  } finally {
    await tab.close();
    await page.close();
  }
}

/**
 * What one run in a page says: 'ran' (to its end, printing, without an error, in an isolated
 * page), 'skipped' (it failed after asking for a Node built-in: Node-only by nature) or 'failed';
 * with the reason.
 */
export function verdict(run) {
  if (!run.done || run.errors.length > 0) {
    const why = run.timedOut ? `did not finish in ${run.seconds.toFixed(0)} s` : run.errors[0];
    if (run.builtins.length > 0)
      return { status: 'skipped', reason: `Node only: it reached for ${run.builtins.join(', ')} at run time (${why.split('\n')[0]})` };
    return { status: 'failed', reason: run.errors.length > 0 ? run.errors.join('\n') : why };
  }
  if (!run.isolated) return { status: 'failed', reason: 'the page was not cross-origin isolated' };
  if (run.output.length === 0) return { status: 'failed', reason: 'it ran to its end but printed nothing' };
  return { status: 'ran', reason: '' };
}
