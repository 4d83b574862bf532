import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import type { BackendSizes } from './measure.js';
import type { PageResult } from './page.js';

/** Debian's chromium (`apt-get install chromium`). */
export const CHROMIUM = '/usr/bin/chromium';

/** The flags every almora run of Chromium uses: no sandbox (root), no network chatter. */
export const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--enable-unsafe-swiftshader', '--enable-unsafe-webgpu'];

function pageSource(): string {
  // The bench runs from dist/ inside the repository; the page is bundled from its source.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (dir !== path.dirname(dir)) {
    const candidate = path.join(dir, 'src', 'backends', 'page.ts');
    if (existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error('apps/bench/src/backends/page.ts not found: run the bench from the repository');
}

/**
 * Measures gpu.js's browser modes in headless Chromium; `extraFlags` (e.g. `--use-angle=vulkan`
 * on a machine with a GPU) are added to the usual ones. Resolves to undefined with the reason when
 * Chromium is not installed.
 */
export async function measureInChromium(sizes: BackendSizes, repeats: number, seed: number, extraFlags: string[]): Promise<PageResult | string> {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install chromium): gpu.js's WebGL modes were not measured`;
  const bundle = await build({ entryPoints: [pageSource()], bundle: true, format: 'esm', platform: 'browser', write: false, logLevel: 'silent' });
  const script = bundle.outputFiles[0].text;
  const server = createServer((request, response) => {
    if (request.url === '/page.js') response.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    else response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><script type="module" src="/page.js"></script>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const profile = await mkdtemp(path.join(os.tmpdir(), 'almora-bench-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_FLAGS, ...extraFlags] });
  try {
    const page = await browser.newPage();
    const { port } = server.address() as { port: number };
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.waitForFunction(() => typeof window.measureInBrowser === 'function');
    return await page.evaluate(([s, r, seedValue]) => window.measureInBrowser(s, r, seedValue), [sizes, repeats, seed] as const);
  } finally {
    await browser.close();
    server.close();
    await rm(profile, { recursive: true, force: true });
  }
}
