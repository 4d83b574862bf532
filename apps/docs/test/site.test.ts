import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, chromiumInstalled, launchChromium } from '@almora/chromium';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveStatic } from '../scripts/static-server.mjs';
import { explore, type ExplorerParams, phaseDiagram, PRESETS } from '../src/explorer/compute.js';
import { autoMark } from '../src/explorer/heatmap.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, '..', 'dist');
const artifacts = path.join(here, '..', 'test-artifacts');

if (!chromiumInstalled()) console.warn(`skipping the docs site's browser tests: no Chromium at ${CHROMIUM} (apt-get install chromium)`);

/** Every heat-map and point-table cell that is clipped, off the screen or squeezed (runs in the page). */
function visibilityProblems(): string[] {
  return [...document.querySelectorAll<HTMLElement>('table.heatmap td, table.heatmap th, #results td, #results th')].flatMap((cell) => {
    const box = cell.getBoundingClientRect();
    const content = cell.querySelector<HTMLElement>('button') ?? cell;
    const clipped = content.scrollWidth > content.clientWidth + 1 || box.left < -1 || box.right > window.innerWidth + 1 || box.width < 8;
    return clipped
      ? [
          `${cell.closest('table')?.dataset.kind ?? 'results'}: "${cell.textContent}" at ${Math.round(box.left)}–${Math.round(box.right)} of ${window.innerWidth}, content ${content.scrollWidth} > ${content.clientWidth}`,
        ]
      : [];
  });
}

describe.runIf(chromiumInstalled())('the built docs site in headless Chromium', () => {
  let site: { url: string; close: () => Promise<void> };
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  let browser: BrowserContext;

  beforeAll(async () => {
    if (!existsSync(path.join(dist, 'index.html'))) throw new Error('dist/ is missing: build the site first (pnpm --filter @almora/docs build)');
    site = await serveStatic(dist);
    // With WebGPU available (the launcher's flags), the explorer computes on it.
    chromium = await launchChromium();
    browser = chromium.context;
    await mkdir(artifacts, { recursive: true });
  }, 60_000);

  afterAll(async () => {
    await chromium?.close();
    await site?.close();
  });

  async function open(at: string, errors: string[], page?: Page): Promise<Page> {
    const p = page ?? (await browser.newPage());
    p.on('console', (m) => {
      if (m.type() === 'error') errors.push(`${at}: ${m.text()}`);
    });
    p.on('pageerror', (e) => errors.push(`${at}: ${e.message}`));
    p.on('response', (r) => {
      if (r.status() >= 400) errors.push(`${r.url()}: HTTP ${r.status()} (from ${p.url()})`);
    });
    const response = await p.goto(new URL(at, site.url).href, { waitUntil: 'load' });
    if (!response || response.status() !== 200) errors.push(`${at}: HTTP ${response?.status()}`);
    return p;
  }

  it('every page loads without console errors and every internal link and asset resolves', async () => {
    const errors: string[] = [];
    const seen = new Set<string>(['index.html']);
    const queue = ['index.html'];
    const page = await browser.newPage();
    let firstVisit = true;
    while (queue.length > 0) {
      const at = queue.shift()!;
      if (firstVisit) {
        await open(at, errors, page);
        firstVisit = false;
      } else {
        const response = await page.goto(new URL(at, site.url).href, { waitUntil: 'load' });
        if (!response || response.status() !== 200) errors.push(`${at}: HTTP ${response?.status()}`);
      }
      const refs = await page.evaluate(() =>
        [...document.querySelectorAll<HTMLElement>('a[href], img[src], link[href], script[src]')].map(
          (e) => e.getAttribute('href') ?? e.getAttribute('src') ?? '',
        ),
      );
      for (const ref of refs) {
        const target = new URL(ref, new URL(at, site.url));
        if (target.origin !== new URL(site.url).origin) continue;
        const relative = target.pathname.slice(1);
        if (seen.has(relative)) continue;
        seen.add(relative);
        if (relative.endsWith('.html') || relative === '') queue.push(relative || 'index.html');
        else {
          const asset = await page.request.get(target.href);
          if (asset.status() !== 200) errors.push(`${at}: ${ref} is HTTP ${asset.status()}`);
        }
      }
    }
    await page.close();
    expect(errors).toEqual([]);
    expect([...seen].filter((p) => p.endsWith('.html')).length).toBeGreaterThan(50);
    for (const required of [
      'install.html',
      'guide.html',
      'cli.html',
      'concepts.html',
      'explorer.html',
      'benchmarks/scaling.html',
      'benchmarks/phase.html',
      'api/functions/_almora_lora.loraGradients.html',
      'api/functions/_almora_lora.loraAttention.html',
      'api/functions/_almora_lora.attention.html',
      'benchmarks/memory.html',
    ])
      expect(seen.has(required)).toBe(true);
    // ~200 pages one after another: about a minute here, so give a slow machine room.
  }, 600_000);

  it('the explorer computes in a worker, shows progress, and agrees with the same case in Node', async () => {
    const errors: string[] = [];
    const page = await open('explorer.html', errors);
    await page.waitForFunction(() => document.querySelector('#status')?.textContent?.startsWith('Ready'), undefined, { timeout: 60_000 });
    const ready = (await page.textContent('#status'))!;
    const params: ExplorerParams = { length: 256, d: 4, gamma: 0.5, degree: 2, epsilon: 1e-3, adaptation: 'partial' };
    await page.selectOption('#explorer select[name=length]', String(params.length));
    await page.selectOption('#explorer select[name=d]', String(params.d));
    await page.fill('#explorer input[name=gamma]', String(params.gamma));
    await page.selectOption('#explorer select[name=degree]', String(params.degree));
    await page.selectOption('#explorer select[name=epsilon]', '1e-3');
    await page.click('#explorer button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#status')?.textContent?.startsWith('Done'), undefined, { timeout: 120_000 });
    const shown = await page.evaluate(() =>
      Object.fromEntries(
        [...document.querySelectorAll<HTMLTableRowElement>('#results tr')].map((r) => [
          r.dataset.key!,
          r.dataset.value === undefined ? r.cells[1].textContent! : Number(r.dataset.value),
        ]),
      ),
    );
    await page.screenshot({ path: path.join(artifacts, 'explorer.png'), fullPage: true });
    expect(errors).toEqual([]);

    const node = await explore(params);
    // The page names the backend it computes on: WebAssembly by default, on every core here (the
    // server isolates the page), in float64.
    const found = /computing in a Web Worker on WebAssembly SIMD \((wasm simd \d+ threads?), float64\)/.exec(ready)?.[1];
    expect(found).toMatch(/^wasm simd [2-9]\d* threads$|^wasm simd 1 thread$/);
    expect(shown.backend).toBe(found);
    const close = (value: unknown, expected: number, relative: number) =>
      expect(Math.abs((value as number) - expected)).toBeLessThanOrEqual(relative * Math.abs(expected) + 1e-12);
    close(shown.gamma, node.gamma, 1e-12);
    close(shown.threshold, node.threshold, 1e-12);
    close(shown.exactLoss, node.exactLoss, 1e-12);
    if ('refused' in node.fast) throw new Error('the chosen case should not be refused');
    expect(shown.degree).toBe(node.fast.degree);
    expect(shown.rank).toBe(node.fast.rank);
    close(shown.softmaxBound, node.fast.softmaxBound, 1e-12);
    close(shown.relativeError, node.fast.relativeError, 1e-9);
    const verdict = await page.textContent('tr[data-key=autoChosen] td');
    expect(verdict).toBe(node.auto.chosen);
    expect(shown.autoDegree).toBe(node.auto.degree);
  });

  it("the explorer's phase diagram computes in the worker, agrees with Node, and every value is visible at 1280 and 390 px", async () => {
    const errors: string[] = [];
    const page = await open('explorer.html', errors);
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.waitForFunction(() => document.querySelector('#diagram-status')?.textContent?.startsWith('Ready'), undefined, { timeout: 60_000 });
    await page.selectOption('select[name=preset]', 'quick');
    await page.click('#diagram button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#diagram-status')?.textContent?.startsWith('Done'), undefined, { timeout: 120_000 });
    const shown = await page.evaluate(() =>
      [...document.querySelectorAll<HTMLTableCellElement>('table.heatmap[data-kind=error] td[data-row]')].map((td) => ({
        row: Number(td.dataset.row),
        column: Number(td.dataset.column),
        error: td.dataset.value === undefined ? undefined : Number(td.dataset.value),
        refused: td.classList.contains('refused'),
        crossing: td.classList.contains('crossing'),
        auto: td.querySelector('.auto')?.textContent,
      })),
    );
    const { spec } = PRESETS.quick;
    const node = await phaseDiagram(spec);
    expect(shown).toHaveLength(node.length);
    for (const cell of node) {
      const at = shown.find((s) => s.row === cell.row && s.column === cell.column)!;
      expect(at.auto, `cell ${cell.row},${cell.column}`).toBe(autoMark(cell));
      expect(at.crossing).toBe(spec.gammas.findIndex((g) => g >= cell.threshold) === cell.column);
      if ('refused' in cell.fast) expect(at.refused).toBe(true);
      else expect(Math.abs(at.error! - cell.fast.relativeError)).toBeLessThanOrEqual(1e-9 * cell.fast.relativeError + 1e-13);
    }
    // A click shows that cell's numbers in the point table.
    await page.click('table.heatmap[data-kind=error] td[data-row="1"][data-column="0"] button');
    expect(await page.textContent('#results tr[data-key=point] td')).toBe(`L = ${spec.rows[1].length}, Γ = ${spec.gammas[0]}, degree ${spec.rows[1].degree}`);
    await page.screenshot({ path: path.join(artifacts, 'explorer-diagram.png'), fullPage: true });
    for (const width of [1280, 390]) {
      await page.setViewportSize({ width, height: 844 });
      const hidden = await page.evaluate(visibilityProblems);
      expect(hidden, `at ${width} px`).toEqual([]);
    }
    // The widest preset: every cell fits at 390 px as it fills in, and cancelling stops it between cells.
    await page.selectOption('select[name=preset]', 'crossing');
    await page.click('#diagram button[type=submit]');
    await page.waitForFunction(
      () => document.querySelectorAll('table.heatmap[data-kind=error] td[data-value], table.heatmap[data-kind=error] td.refused').length >= 2,
      undefined,
      { timeout: 120_000 },
    );
    expect(await page.evaluate(() => document.querySelectorAll('table.heatmap[data-kind=error] td[data-row]').length)).toBe(
      PRESETS.crossing.spec.gammas.length * PRESETS.crossing.spec.rows.length,
    );
    expect(await page.evaluate(visibilityProblems)).toEqual([]);
    await page.click('#cancel');
    await page.waitForFunction(() => document.querySelector('#diagram-status')?.textContent?.startsWith('Cancelled'), undefined, { timeout: 120_000 });
    expect(await page.evaluate(() => document.querySelectorAll('table.heatmap[data-kind=error] td.pending').length)).toBeGreaterThan(0);
    await page.screenshot({ path: path.join(artifacts, 'explorer-diagram-mobile.png'), fullPage: true });
    await page.locator('#maps').screenshot({ path: path.join(artifacts, 'explorer-diagram-mobile-maps.png') });
    expect(errors).toEqual([]);
    await page.close();
  }, 180_000);

  it('searches the site from the header of any page', async () => {
    const errors: string[] = [];
    const page = await open('concepts.html', errors);
    await page.fill('header.site input[name=q]', 'face-splitting');
    await page.press('header.site input[name=q]', 'Enter');
    await page.waitForFunction(() => /^\d+\+? results? for/.test(document.querySelector('#search-status')?.textContent ?? ''), undefined, { timeout: 30_000 });
    const hits = await page.$$eval('#search-results a', (links) => links.map((a) => a.getAttribute('href')));
    expect(hits).toContain('concepts.html');
    expect(await page.$$eval('#search-results mark', (marks) => marks.length)).toBeGreaterThan(0);
    // A hit's link opens its page.
    await page.click('#search-results a[href="concepts.html"]');
    await page.waitForURL(/concepts\.html$/);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('mobile width and dark mode keep every page inside the screen', async () => {
    const page = await browser.newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    await page.emulateMedia({ colorScheme: 'dark' });
    for (const at of [
      'index.html',
      'install.html',
      'guide.html',
      'concepts.html',
      'explorer.html',
      'search.html?q=attention',
      'benchmarks/scaling.html',
      'benchmarks/phase.html',
    ]) {
      await page.goto(new URL(at, site.url).href, { waitUntil: 'load' });
      const layout = await page.evaluate(() => ({
        overflow: document.documentElement.scrollWidth - window.innerWidth,
        background: getComputedStyle(document.body).backgroundColor,
      }));
      expect(layout.overflow, at).toBeLessThanOrEqual(1);
      expect(layout.background, at).toBe('rgb(20, 23, 26)');
      if (at === 'explorer.html') await page.screenshot({ path: path.join(artifacts, 'explorer-mobile-dark.png'), fullPage: true });
    }
    await page.close();
  });
});
