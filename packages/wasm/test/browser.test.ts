import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, chromiumInstalled, openEntry } from '@almora/chromium';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));

if (!chromiumInstalled()) console.warn(`skipping the wasm browser tests: no Chromium at ${CHROMIUM} (apt-get install chromium)`);
describe.runIf(chromiumInstalled())('the wasm backend in a Web Worker of a cross-origin-isolated page in headless Chromium', () => {
  let session: Awaited<ReturnType<typeof openEntry>>;
  let result: Awaited<ReturnType<Window['runConformance']>>;

  beforeAll(async () => {
    session = await openEntry(path.join(here, 'browser/entry.ts'), { isolated: true, ready: 'runConformance' });
    result = await session.tab.evaluate(() => window.runConformance());
  }, 240_000);

  afterAll(async () => {
    await session?.close();
  });

  it('runs on shared memory with every core, without console errors', () => {
    if ('error' in result) throw new Error(result.error);
    console.log(`Chromium: ${result.backend}, ${result.checks.length} checks in ${result.checks.reduce((s, c) => s + c.seconds, 0).toFixed(2)} s`);
    expect(result.isolated).toBe(true);
    expect(result.threads).toBeGreaterThanOrEqual(1);
    expect(result.backend).toBe(`wasm simd ${result.threads} thread${result.threads === 1 ? '' : 's'}`);
    expect(session.errors).toEqual([]);
  });

  it('every primitive, tall matrix and gradient agrees with its definition and the float64 CPU', () => {
    if ('error' in result) throw new Error(result.error);
    expect(result.checks.filter((c) => !(c.deviation <= c.tolerance))).toEqual([]);
    expect(result.checks.length).toBeGreaterThan(100);
  });
});
