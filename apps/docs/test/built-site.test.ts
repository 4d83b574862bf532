import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const read = (at: string) => readFileSync(path.join(dist, at), 'utf8');

describe.runIf(existsSync(path.join(dist, 'index.html')))('the built site', () => {
  it('writes every formula as MathML beside its rendering, for screen readers', () => {
    const concepts = read('concepts.html');
    const formulas = concepts.match(/<span class="katex">/g)?.length ?? 0;
    expect(formulas).toBeGreaterThan(20);
    expect(concepts.match(/<math xmlns="http:\/\/www.w3.org\/1998\/Math\/MathML"/g)?.length).toBe(formulas);
  });

  it("puts the site's navigation on every API page, pointing back up the right number of folders", () => {
    const page = read('api/functions/_almora_lora.loraGradients.html');
    expect(page).toContain('<nav aria-label="almora site"');
    expect(page).toContain('<a href="../../guide.html"');
    expect(read('api/index.html')).toContain('<a href="../install.html"');
  });

  it('indexes the pages, the benchmarks and the API for search', () => {
    const index = JSON.parse(read('assets/search-index.json')) as { url: string; title: string; text: string }[];
    const urls = new Set(index.map((e) => e.url));
    for (const url of ['index.html', 'install.html', 'guide.html', 'concepts.html', 'benchmarks/phase.html', 'api/functions/_almora_lora.loraAttention.html'])
      expect(urls.has(url), url).toBe(true);
    expect(urls.has('search.html')).toBe(false);
    const concepts = index.find((e) => e.url === 'concepts.html')!;
    expect(concepts.text).toMatch(/face-splitting/);
    expect(concepts.text).not.toMatch(/<[a-z]/);
  });
});
