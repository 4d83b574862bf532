import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CHROMIUM, chromiumInstalled, launchChromium } from '@almora/chromium';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeBuiltinImportMap, nodeBuiltinsImported, runInPage, verdict, type PageRun } from '../src/browser.js';

describe('nodeBuiltinsImported', () => {
  it('finds the built-ins an example imports, statically, dynamically or by require, with or without node:', () => {
    const example = [
      "import { readFile } from 'node:fs/promises';",
      "import os from 'os';",
      "import { Rng } from '@almora/tensor';",
      "const path = await import('node:path');",
      "const { Worker } = require('worker_threads');",
      "const again = await import('node:path');",
    ].join('\n');
    expect(nodeBuiltinsImported(example)).toEqual(['node:fs/promises', 'os', 'node:path', 'worker_threads']);
  });

  it('finds none in an example that imports only packages, or names a built-in without importing it', () => {
    expect(nodeBuiltinsImported("import { readPeftAdapter } from '@almora/peft';\nconsole.log('node:fs', 'fs');\n")).toEqual([]);
    expect(nodeBuiltinsImported("import { fs } from 'fs-extra';\nconst name = 'node:fs';\nawait import(name);\n")).toEqual([]);
  });
});

describe('nodeBuiltinImportMap', () => {
  const { imports } = nodeBuiltinImportMap();

  it('answers every built-in, with and without node:, by a module that records its name and throws', () => {
    for (const name of ['node:fs/promises', 'fs/promises', 'node:worker_threads', 'os']) expect(imports[name], name).toMatch(/^data:text\/javascript,/);
    const source = decodeURIComponent(imports['node:fs/promises'].slice('data:text/javascript,'.length));
    expect(source).toContain('.push("node:fs/promises")');
    expect(source).toMatch(/throw new TypeError/);
    expect(imports['@almora/peft']).toBeUndefined();
  });
});

describe('verdict', () => {
  const run = (over: Partial<PageRun>): PageRun => ({
    done: true,
    timedOut: false,
    isolated: true,
    builtins: [],
    output: ['1'],
    errors: [],
    seconds: 1,
    ...over,
  });

  it('passes a run that ended, printed and raised nothing in an isolated page', () => {
    expect(verdict(run({}))).toEqual({ status: 'ran', reason: '' });
  });

  it('skips a run that failed after reaching for a built-in, naming it and the error', () => {
    const skipped = verdict(run({ done: false, builtins: ['node:fs/promises'], errors: ['PeftError: reading folders needs Node\n    at x'] }));
    expect(skipped).toEqual({ status: 'skipped', reason: 'Node only: it reached for node:fs/promises at run time (PeftError: reading folders needs Node)' });
  });

  it('passes a run that reached for a built-in and went on without it', () => {
    expect(verdict(run({ builtins: ['node:os'] })).status).toBe('ran');
  });

  it('fails an error, a timeout, silence, and a page without cross-origin isolation', () => {
    expect(verdict(run({ done: false, errors: ['Error: boom'] }))).toEqual({ status: 'failed', reason: 'Error: boom' });
    expect(verdict(run({ errors: ['console.error: late'] })).status).toBe('failed');
    expect(verdict(run({ done: false, timedOut: true, seconds: 180 }))).toEqual({ status: 'failed', reason: 'did not finish in 180 s' });
    expect(verdict(run({ output: [] })).reason).toBe('it ran to its end but printed nothing');
    expect(verdict(run({ isolated: false })).reason).toBe('the page was not cross-origin isolated');
  });
});

if (!chromiumInstalled()) console.warn(`skipping the release check's page runs: no Chromium at ${CHROMIUM} (apt-get install chromium)`);
describe.runIf(chromiumInstalled())('runInPage in headless Chromium', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'almora-page-'));
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  const page = (name: string, source: string): Promise<PageRun> => {
    writeFileSync(path.join(dir, `${name}.mjs`), source);
    return runInPage(browser.context, path.join(dir, `${name}.mjs`), 30_000);
  };

  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs an example with top-level await to its end in a cross-origin-isolated page, collecting what it printed', async () => {
    const ran = await page('awaits', "await new Promise((resolve) => setTimeout(resolve, 200));\nconsole.log('after', 200, typeof SharedArrayBuffer);\n");
    expect(ran).toMatchObject({ done: true, isolated: true, output: ['after 200 function'], errors: [], builtins: [] });
    expect(verdict(ran).status).toBe('ran');
  });

  it('skips an example whose code reaches for a Node built-in by a name the bundler does not follow', async () => {
    const source =
      "console.log('start');\nconst specifier = 'node:fs/promises';\nconst fs = await import(specifier);\nconsole.log(await fs.readFile('adapter_config.json'));\n";
    const ran = await page('folder', source);
    expect(ran.done).toBe(false);
    expect(ran.builtins).toEqual(['node:fs/promises']);
    expect(verdict(ran)).toMatchObject({ status: 'skipped', reason: expect.stringContaining('node:fs/promises is a Node built-in') });
  });

  it('fails an example that throws, rejects unhandled, logs an error or never ends', async () => {
    const thrown = await page('throws', "console.log('before');\nthrow new RangeError('the example broke');\n");
    expect(verdict(thrown)).toMatchObject({ status: 'failed', reason: expect.stringContaining('RangeError: the example broke') });
    const rejected = await page('rejects', "Promise.reject(new Error('nobody caught this'));\nconsole.log('went on');\n");
    expect(verdict(rejected)).toMatchObject({ status: 'failed', reason: expect.stringContaining('nobody caught this') });
    const logged = await page('logs-error', "console.error('something is off');\nconsole.log('went on');\n");
    expect(verdict(logged)).toEqual({ status: 'failed', reason: 'console.error: something is off' });
    writeFileSync(path.join(dir, 'hangs.mjs'), "await new Promise(() => {});\nconsole.log('never');\n");
    const hung = await runInPage(browser.context, path.join(dir, 'hangs.mjs'), 1_000);
    expect(hung).toMatchObject({ done: false, timedOut: true });
    expect(verdict(hung).status).toBe('failed');
  });
});
