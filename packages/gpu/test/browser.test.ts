import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CHROMIUM = '/usr/bin/chromium';
const here = path.dirname(fileURLToPath(import.meta.url));

// Debian's chromium is installed by .ci/run; without it this suite is skipped, and says so.
if (!existsSync(CHROMIUM)) console.warn(`skipping the WebGL2 backend tests: no Chromium at ${CHROMIUM} (apt-get install chromium)`);
describe.runIf(existsSync(CHROMIUM)).each(['webgl2', 'webgpu'] as const)('the gpu.js backend in %s mode in headless Chromium', (mode) => {
  let browser: BrowserContext;
  let server: Server;
  let profile: string;
  let result: { backend: string; onDevice: boolean; checks: { name: string; deviation: number; tolerance: number }[] } | { unavailable: string };
  const errors: string[] = [];

  beforeAll(async () => {
    const bundle = await build({ entryPoints: [path.join(here, 'browser/entry.ts')], bundle: true, format: 'esm', platform: 'browser', write: false, logLevel: 'silent' });
    const script = bundle.outputFiles[0].text;
    server = createServer((request, response) => {
      if (request.url === '/entry.js') response.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
      else response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><script type="module" src="/entry.js"></script>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    profile = await mkdtemp(path.join(os.tmpdir(), 'almora-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      // WebGPU is behind a flag in Chromium on Linux; SwiftShader serves both WebGL2 and WebGPU here.
      args: ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--enable-unsafe-swiftshader', '--enable-unsafe-webgpu'],
    });
    const page = await browser.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.waitForFunction(() => typeof window.runConformance === 'function');
    result = await page.evaluate((m) => window.runConformance(m), mode);
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    server?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  it(`ran on ${mode}, without console errors`, (context) => {
    if ('unavailable' in result) {
      console.warn(`skipping gpu.js ${mode}: ${result.unavailable}`);
      return context.skip();
    }
    expect(result.backend).toBe(`gpu.js ${mode}`);
    expect(result.onDevice).toBe(true);
    expect(errors).toEqual([]);
  });

  it('every primitive, tall matrix and gradient agrees with float64 within float32 tolerance', (context) => {
    if ('unavailable' in result) return context.skip();
    const failed = result.checks.filter((c) => !(c.deviation <= c.tolerance));
    expect(failed).toEqual([]);
    expect(result.checks.length).toBeGreaterThan(40);
    const worst = [...result.checks].sort((a, b) => b.deviation / b.tolerance - a.deviation / a.tolerance).slice(0, 3);
    console.log(`${mode} closest to tolerance: ${worst.map((c) => `${c.name} ${c.deviation.toExponential(1)} / ${c.tolerance.toExponential(1)}`).join('; ')}`);
  });
});
