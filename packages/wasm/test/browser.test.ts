import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, chromiumInstalled, launchChromium, servePage } from '@almora/chromium';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));

if (!chromiumInstalled()) console.warn(`skipping the wasm browser tests: no Chromium at ${CHROMIUM} (apt-get install chromium)`);
describe.runIf(chromiumInstalled())('the wasm backend in a Web Worker of a cross-origin-isolated page in headless Chromium', () => {
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Awaited<ReturnType<typeof servePage>>;
  let result: Awaited<ReturnType<Window['runConformance']>>;
  const errors: string[] = [];

  beforeAll(async () => {
    page = await servePage(path.join(here, 'browser/entry.ts'), { isolated: true });
    browser = await launchChromium();
    const tab = await browser.context.newPage();
    tab.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    tab.on('pageerror', (error) => errors.push(error.message));
    await tab.goto(page.url);
    await tab.waitForFunction(() => typeof window.runConformance === 'function');
    result = await tab.evaluate(() => window.runConformance());
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await page?.close();
  });

  it('runs on shared memory with every core, without console errors', () => {
    if ('error' in result) throw new Error(result.error);
    console.log(`Chromium: ${result.backend}, ${result.checks.length} checks in ${result.checks.reduce((s, c) => s + c.seconds, 0).toFixed(2)} s`);
    expect(result.isolated).toBe(true);
    expect(result.threads).toBeGreaterThanOrEqual(1);
    expect(result.backend).toBe(`wasm simd ${result.threads} thread${result.threads === 1 ? '' : 's'}`);
    expect(errors).toEqual([]);
  });

  it('every primitive, tall matrix and gradient agrees with its definition and the float64 CPU', () => {
    if ('error' in result) throw new Error(result.error);
    expect(result.checks.filter((c) => !(c.deviation <= c.tolerance))).toEqual([]);
    expect(result.checks.length).toBeGreaterThan(100);
  });
});
