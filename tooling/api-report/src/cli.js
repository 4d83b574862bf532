#!/usr/bin/env node
/* global console, process */
// Writes the API report of every public package to packages/<name>/api-report.md (#16), or with
// --check writes nothing and exits 1, printing a diff per package, when a committed report differs
// from the API the package's built types have now.
//
//   node tooling/api-report/src/cli.js [--check]
//
// Run it after a build: `pnpm api-report` builds the packages first.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compareReport, publicPackages } from './report.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const check = process.argv.includes('--check');
const stale = [];
for (const pkg of publicPackages(root)) {
  const { file, report, diff } = compareReport(pkg.dir, root);
  const name = path.relative(root, file);
  if (diff === '') {
    console.log(`${pkg.name}: ${name} is up to date`);
  } else if (check) {
    stale.push(pkg.name);
    console.log(`${pkg.name}: the public API differs from ${name}\n${diff}`);
  } else {
    writeFileSync(file, report);
    console.log(`${pkg.name}: wrote ${name}`);
  }
}
if (stale.length > 0) {
  console.error(`API reports out of date: ${stale.join(', ')}. If the change is meant, run \`pnpm api-report\` and commit the reports.`);
  process.exitCode = 1;
}
