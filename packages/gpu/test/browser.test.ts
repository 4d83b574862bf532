import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, chromiumInstalled, openEntry } from '@almora/chromium';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));

// Debian's chromium is installed by .ci/run; without it this suite is skipped, and says so.
if (!chromiumInstalled()) console.warn(`skipping the browser backend tests: no Chromium at ${CHROMIUM} (apt-get install chromium)`);
describe.runIf(chromiumInstalled()).each(['webgl2', 'webgpu'] as const)('the gpu.js backend in %s mode in headless Chromium', (mode) => {
  let session: Awaited<ReturnType<typeof openEntry>>;
  let result: { backend: string; onDevice: boolean; checks: { name: string; deviation: number; tolerance: number }[] } | { unavailable: string };

  beforeAll(async () => {
    session = await openEntry(path.join(here, 'browser/entry.ts'), { ready: 'runConformance' });
    result = await session.tab.evaluate((m) => window.runConformance(m), mode);
  }, 240_000);

  afterAll(async () => {
    await session?.close();
  });

  it(`ran on ${mode}, without console errors`, (context) => {
    if ('unavailable' in result) {
      console.warn(`skipping gpu.js ${mode}: ${result.unavailable}`);
      return context.skip();
    }
    expect(result.backend).toBe(`gpu.js ${mode}`);
    expect(result.onDevice).toBe(true);
    expect(session.errors).toEqual([]);
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
