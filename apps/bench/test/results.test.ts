import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseSavedReport, suites } from '../src/index.js';

const results = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'results');
const stems = readdirSync(results)
  .filter((f) => f.endsWith('.md'))
  .map((f) => f.slice(0, -'.md'.length));

describe('the committed results', () => {
  it('are there', () => expect(stems.length).toBeGreaterThan(0));

  it.each(stems)('%s: its JSON is beside its summary, which states the JSON’s date and findings and embeds plots that exist', (stem) => {
    const jsonFile = path.join(results, `${stem}.json`);
    expect(existsSync(jsonFile), `${stem}.json is missing: the summary says every raw timing is in it`).toBe(true);
    expect(existsSync(path.join(results, `${stem}.csv`))).toBe(true);
    const saved = parseSavedReport(readFileSync(jsonFile, 'utf8'), jsonFile);
    const md = readFileSync(path.join(results, `${stem}.md`), 'utf8');
    expect(md).toContain(`Measured ${saved.machine.date.slice(0, 10)} on ${saved.machine.cpu}`);
    expect(md).toContain(`Reproduce with \`${saved.command}\`. Seed and every raw timing are in \`${stem}.json\`.`);
    for (const finding of saved.findings) expect(md).toContain(`- ${finding}\n`);
    const embedded = [...md.matchAll(/^!\[[^\]]*\]\(([^)]+\.svg)\)$/gm)].map((m) => m[1]);
    expect(embedded).toEqual(saved.plots.map((name) => `${stem}-${name}.svg`));
    for (const svg of embedded) expect(existsSync(path.join(results, svg)), svg).toBe(true);
  });

  it.each(stems.filter((stem) => existsSync(path.join(results, `${stem}.json`))))(
    '%s: its plots are what the current code draws from its JSON (after changing a plot, `pnpm bench replot <stem> --out results`)',
    (stem) => {
      const jsonFile = path.join(results, `${stem}.json`);
      const saved = parseSavedReport(readFileSync(jsonFile, 'utf8'), jsonFile);
      const plots = suites.get(saved.suite)!.drawPlots?.(saved) ?? [];
      expect(plots.map((p) => p.name)).toEqual(saved.plots);
      for (const plot of plots)
        expect(readFileSync(path.join(results, `${stem}-${plot.name}.svg`), 'utf8') === plot.svg, `${stem}-${plot.name}.svg`).toBe(true);
    },
  );
});
