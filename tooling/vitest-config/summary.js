#!/usr/bin/env node
// Totals the vitest JSON reports of every workspace package into one closing line, so a reader
// (or CI) sees the whole repository's count at the end of `pnpm test`, cached packages included.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let passed = 0;
let failed = 0;
let skipped = 0;
const missing = [];
for (const group of ['packages', 'apps', 'tooling']) {
  const dir = path.join(root, group);
  if (!existsSync(dir)) continue;
  for (const name of readdirSync(dir)) {
    const pkg = path.join(dir, name);
    if (!existsSync(path.join(pkg, 'vitest.config.ts'))) continue;
    const report = path.join(pkg, 'test-results', 'vitest.json');
    if (!existsSync(report)) {
      missing.push(`${group}/${name}`);
      continue;
    }
    const r = JSON.parse(readFileSync(report, 'utf8'));
    passed += r.numPassedTests;
    failed += r.numFailedTests;
    skipped += r.numPendingTests + (r.numTodoTests ?? 0);
    console.log(`${group}/${name}: ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
  }
}
if (missing.length > 0) {
  console.error(`no test report from: ${missing.join(', ')}`);
  process.exitCode = 1;
}
if (passed + failed === 0) {
  console.error('no test ran');
  process.exitCode = 1;
}
if (failed > 0) process.exitCode = 1;
console.log(`\ntests: ${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
