import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, chromiumInstalled, launchChromium, servePage } from '@almora/chromium';
import type { BackendSizes } from './measure.js';
import type { PageResult } from './page.js';

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
 * on a machine with a GPU) are added to the usual ones. Resolves to the reason instead when
 * Chromium is not installed.
 */
export async function measureInChromium(sizes: BackendSizes, repeats: number, seed: number, extraFlags: string[]): Promise<PageResult | string> {
  if (!chromiumInstalled()) return `no Chromium at ${CHROMIUM} (apt-get install chromium): gpu.js's browser modes were not measured`;
  const page = await servePage(pageSource());
  const browser = await launchChromium(extraFlags);
  try {
    const tab = await browser.context.newPage();
    await tab.goto(page.url);
    await tab.waitForFunction(() => typeof window.measureInBrowser === 'function');
    return await tab.evaluate(([s, r, seedValue]) => window.measureInBrowser(s, r, seedValue), [sizes, repeats, seed] as const);
  } finally {
    await browser.close();
    await page.close();
  }
}
