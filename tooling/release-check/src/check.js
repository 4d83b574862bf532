#!/usr/bin/env node
/* global console, process */
// The release check (#16): what a new user gets from `npm install @almora/…`. Packs every public
// package under packages/ with pnpm (which writes real version ranges for workspace: ones),
// checks each tarball's manifest and files, installs all the tarballs into a fresh project outside
// the workspace with npm, pnpm and yarn (yarn classic through npx where no yarn is installed), and
// from there runs every README example as ESM (.mjs) and as CommonJS (.cjs), type-checks it as .mts
// and .cts (node16 resolution, so each through its own `types` condition), bundles it for the
// browser and runs the bundle in headless Chromium (where installed; see browser.js).
// Our packages come only from the tarballs: the project points the @almora scope at a closed port,
// so any attempt to fetch one from a registry fails; other dependencies come from the npm registry.
//
//   node tooling/release-check/src/check.js [--clients npm,pnpm,yarn] [--skip @almora/x,…] [--keep]
//
// Run it after a build (`pnpm release-check` builds first). Exits 1 if any check fails.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, chromiumInstalled, launchChromium } from '@almora/chromium';
import { readmeExamples } from '@almora/vitest-config/readme';
import { buildSync } from 'esbuild';
import { nodeBuiltinsImported, runInPage, verdict } from './browser.js';
import { clients, findCommand, projectFiles } from './clients.js';
import { toCommonJs, toCommonJsTypeScript } from './commonjs.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const rootManifest = readJson(path.join(root, 'package.json'));
const license = readFileSync(path.join(root, 'LICENSE'), 'utf8');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
/** pnpm as the workspace pins it (`packageManager`), through npx like the README's commands. */
const PNPM = ['npx', ['-y', rootManifest.packageManager]];
const CLIENTS = clients(PNPM);
/** Longest an install or one example may run. */
const TIMEOUT_MS = 600_000;
/** Longest one example may run in a browser page. */
const PAGE_TIMEOUT_MS = 180_000;

async function main() {
  const packages = publicPackages().filter((pkg) => !options.skip.includes(pkg.name));
  console.log(
    `release check: ${packages.map((pkg) => `${pkg.name}@${pkg.manifest.version}`).join(', ')}${options.skip.length > 0 ? ` (skipped: ${options.skip.join(', ')})` : ''}`,
  );
  const tarballs = path.join(work, 'tarballs');
  mkdirSync(tarballs);
  for (const pkg of packages) pkg.tarball = pack(pkg, tarballs);
  if (packages.some((pkg) => !pkg.tarball)) return;
  for (const pkg of packages) checkTarball(pkg, packages);
  const browser = chromiumInstalled()
    ? undefined
    : `no Chromium at ${CHROMIUM} (apt-get install chromium): the examples were bundled for the browser, not run in one`;
  for (const client of CLIENTS) {
    if (!options.clients.includes(client.name)) continue;
    const found = findCommand(client, work);
    if (!found.command) {
      console.log(`\n${client.name}: ${found.why}, skipped`);
      tallies.set(`${client.name}: ${found.why}, skipped`, { passed: 0, total: 0, skipped: 0 });
      continue;
    }
    console.log(
      `\n${client.name} ${found.version}${found.why ? ` (${found.why}; through ${found.command.flat().join(' ')})` : ''}: install the tarballs into a fresh project`,
    );
    const project = path.join(work, `with-${client.name}`);
    if (!install(client, found, project, packages)) continue;
    const written = checkExamples(client, project, packages);
    if (browser) {
      console.log(`\n${client.name}: the browser run skipped: ${browser}`);
      tallies.set(`${client.name}: browser run skipped (${browser})`, { passed: 0, total: 0, skipped: 0 });
    } else await runInBrowser(client, written);
  }
  printBrowserOutcomes(packages);
}

/** Every package under packages/ that is not private, with its manifest. */
function publicPackages() {
  const dir = path.join(root, 'packages');
  return readdirSync(dir)
    .sort()
    .filter((name) => existsSync(path.join(dir, name, 'package.json')))
    .map((name) => ({ dir: path.join(dir, name), folder: `packages/${name}`, manifest: readJson(path.join(dir, name, 'package.json')) }))
    .filter((pkg) => !pkg.manifest.private)
    .map((pkg) => ({ ...pkg, name: pkg.manifest.name }));
}

/** `pnpm pack` into `destination`; the tarball's path, or undefined (and a failure) if it did not pack. */
function pack(pkg, destination) {
  const before = new Set(readdirSync(destination));
  const packed = run(PNPM[0], [...PNPM[1], 'pack', '--pack-destination', destination], { cwd: pkg.dir });
  const made = readdirSync(destination).filter((file) => !before.has(file) && file.endsWith('.tgz'));
  const ok = packed.status === 0 && made.length === 1;
  report(ok, `pnpm pack ${pkg.name}${ok ? ` → ${made[0]}` : ''}`, ok ? '' : packed.stdout + packed.stderr, 'pnpm pack');
  return ok ? path.join(destination, made[0]) : undefined;
}

/** What a user gets in the tarball: real version ranges, the license, the README, every file the exports map names, the metadata. */
function checkTarball(pkg, packages) {
  const unpacked = path.join(work, 'unpacked', pkg.folder);
  mkdirSync(unpacked, { recursive: true });
  run('tar', ['-xzf', pkg.tarball, '-C', unpacked]);
  const at = (file) => path.join(unpacked, 'package', file);
  const manifest = readJson(at('package.json'));
  pkg.readme = existsSync(at('README.md')) ? readFileSync(at('README.md'), 'utf8') : '';
  const problems = [];
  for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies', 'devDependencies']) {
    for (const [name, range] of Object.entries(manifest[field] ?? {})) {
      if (range.startsWith('workspace:')) problems.push(`${field} ${name}: ${range}`);
      if (field !== 'dependencies' || !name.startsWith('@almora/')) continue;
      const dependency = packages.find((other) => other.name === name);
      if (!dependency) problems.push(`depends on ${name}, which is not released`);
      else if (range !== `^${dependency.manifest.version}`) problems.push(`depends on ${name}@${range}, not ^${dependency.manifest.version}`);
    }
  }
  if (!existsSync(at('LICENSE')) || readFileSync(at('LICENSE'), 'utf8') !== license) problems.push('LICENSE missing or not the root LICENSE');
  if (pkg.readme === '') problems.push('README.md missing');
  for (const target of exportTargets(manifest.exports)) if (!existsSync(at(target))) problems.push(`exports names ${target}, not in the tarball`);
  const entry = manifest.exports?.['.'];
  for (const condition of ['import', 'require']) {
    if (typeof entry?.[condition]?.types !== 'string' || typeof entry?.[condition]?.default !== 'string')
      problems.push(`exports["."].${condition} lacks types or default`);
  }
  if (manifest.license !== 'MIT') problems.push(`license ${manifest.license}`);
  if (manifest.repository?.url !== rootManifest.repository?.url || manifest.repository?.directory !== pkg.folder)
    problems.push('repository is not the root repository with this folder');
  if (!manifest.engines?.node) problems.push('no engines.node');
  if (!Array.isArray(manifest.keywords) || manifest.keywords.length === 0) problems.push('no keywords');
  if (manifest.sideEffects === undefined) problems.push('no sideEffects');
  report(problems.length === 0, `tarball ${path.basename(pkg.tarball)}: manifest, LICENSE, README, exports`, problems.join('; '), 'tarball contents');
}

/** Every file path in an exports map. */
function exportTargets(exports) {
  if (typeof exports === 'string') return [exports];
  if (exports === null || typeof exports !== 'object') return [];
  return Object.values(exports).flatMap(exportTargets);
}

/** A fresh project in `project` depending on every tarball (see clients.js), installed by `client`; whether it installed our tarballs. */
function install(client, found, project, packages) {
  mkdirSync(project);
  for (const [file, text] of Object.entries(projectFiles(client, found.version, packages, project))) writeFileSync(path.join(project, file), text);
  const started = Date.now();
  const installed = run(found.command[0], [...found.command[1], ...client.install(found.version)], { cwd: project });
  report(installed.status === 0, `${client.name} install (${seconds(started)})`, installed.stdout + installed.stderr, `${client.name}: install`);
  if (installed.status !== 0) return false;
  const wrong = packages.filter((pkg) => readJson(path.join(project, 'node_modules', pkg.name, 'package.json')).version !== pkg.manifest.version);
  report(wrong.length === 0, `${client.name}: node_modules holds the packed versions of ${packages.length} packages`, wrong.map((pkg) => pkg.name).join(', '));
  return wrong.length === 0;
}

/** Each README example from the installed tarballs: run as ESM and CJS, type-checked as .mts and .cts, bundled for the browser; the examples written. */
function checkExamples(client, project, packages) {
  const examples = path.join(project, 'examples');
  mkdirSync(examples);
  const written = [];
  for (const pkg of packages) {
    readmeExamples(pkg.readme).forEach((example, index) => {
      const base = path.join(examples, `${path.basename(pkg.folder)}-${index + 1}`);
      writeFileSync(`${base}.mjs`, example);
      writeFileSync(`${base}.cjs`, toCommonJs(example));
      writeFileSync(`${base}.mts`, example);
      writeFileSync(`${base}.cts`, toCommonJsTypeScript(example));
      written.push({ label: `${client.name} ${pkg.name} README example ${index + 1}`, pkg, base, builtins: nodeBuiltinsImported(example) });
    });
  }
  for (const { label, base } of written) {
    const outputs = [];
    for (const kind of ['mjs', 'cjs']) {
      const started = Date.now();
      const ran = run(process.execPath, [`${base}.${kind}`], { cwd: project });
      const ok = ran.status === 0 && ran.stderr === '' && ran.stdout.trim() !== '';
      outputs.push(ran.stdout);
      report(
        ok,
        `${label} as ${kind === 'mjs' ? 'ESM' : 'CJS'} (${seconds(started)})`,
        `status ${ran.status}\n${ran.stdout}${ran.stderr}`,
        `${client.name}: ${kind === 'mjs' ? 'ESM' : 'CJS'}`,
      );
    }
    if (outputs[0] !== outputs[1]) console.log(`     (note: ${label} printed differently as ESM and CJS)`);
  }
  typecheck(client, project, written);
  for (const example of written) example.bundled = bundle(client, example);
  return written;
}

/** tsc over every .mts and .cts example with node16 resolution: each file resolves our types through its own condition. */
function typecheck(client, project, written) {
  writeFileSync(
    path.join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'node16',
        moduleResolution: 'node16',
        target: 'es2022',
        lib: ['es2022', 'dom'],
        types: [],
        strict: false,
        skipLibCheck: true,
        noEmit: true,
      },
      include: ['examples/*.mts', 'examples/*.cts'],
    }),
  );
  const checked = run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project });
  const output = checked.stdout + checked.stderr;
  for (const { label, base } of written) {
    for (const kind of ['mts', 'cts']) {
      const file = path.relative(project, `${base}.${kind}`);
      const errors = output.split('\n').filter((line) => line.startsWith(file));
      report(errors.length === 0, `${label} type-checks as .${kind}`, errors.join('\n'), `${client.name}: types .${kind}`);
    }
  }
  if (checked.status !== 0 && !written.some(({ base }) => output.includes(path.basename(base)))) report(false, `${client.name}: tsc`, output);
}

/** esbuild's browser bundle of the ESM example, resolved from the installed packages; whether it bundled. An example that imports a Node built-in itself is skipped. */
function bundle(client, { label, base, builtins }) {
  if (builtins.length > 0) {
    skip(`${label} bundles for the browser`, `Node only: it imports ${builtins.join(', ')}`, `${client.name}: browser bundle`);
    return false;
  }
  const started = Date.now();
  try {
    const bundled = buildSync({
      entryPoints: [`${base}.mjs`],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
    });
    report(
      true,
      `${label} bundles for the browser (${Math.round(bundled.outputFiles[0].contents.byteLength / 1024)} KiB, ${seconds(started)})`,
      '',
      `${client.name}: browser bundle`,
    );
    return true;
  } catch (error) {
    report(false, `${label} bundles for the browser`, error instanceof Error ? error.message : String(error), `${client.name}: browser bundle`);
    return false;
  }
}

/** Each bundled example in a page of one headless Chromium (see browser.js); an unbundled one is skipped with the reason. */
async function runInBrowser(client, written) {
  console.log(`\n${client.name}: the examples in headless Chromium (cross-origin-isolated pages)`);
  const tally = `${client.name}: browser run`;
  const browser = await launchChromium();
  try {
    for (const { label, pkg, base, builtins, bundled } of written) {
      const what = `${label} runs in Chromium`;
      const outcome = (status, reason) => browserOutcomes.push({ pkg: pkg.name, client: client.name, status, reason });
      if (!bundled) {
        const reason = builtins.length > 0 ? `Node only: it imports ${builtins.join(', ')}` : 'it did not bundle for the browser';
        skip(what, reason, tally);
        outcome('skipped', reason);
        continue;
      }
      const ran = await runInPage(browser.context, `${base}.mjs`, PAGE_TIMEOUT_MS);
      const { status, reason } = verdict(ran);
      const printed = ran.output.join(' | ');
      if (status === 'skipped') skip(what, reason, tally);
      else
        report(
          status === 'ran',
          `${what} (${ran.seconds.toFixed(1)} s)${status === 'ran' ? `: ${printed.length > 100 ? `${printed.slice(0, 99)}…` : printed}` : ''}`,
          reason,
          tally,
        );
      outcome(status, reason);
    }
  } finally {
    await browser.close();
  }
}

/** Per package: its examples ran in the browser, or were skipped (why), or failed there, with each client. */
function printBrowserOutcomes(packages) {
  if (browserOutcomes.length === 0) return;
  console.log('\nin the browser, per package:');
  for (const pkg of packages) {
    const mine = browserOutcomes.filter((outcome) => outcome.pkg === pkg.name);
    if (mine.length === 0) {
      console.log(`  ${pkg.name}: no README example`);
      continue;
    }
    const groups = new Map();
    for (const { client, status, reason } of mine) {
      const key = status === 'ran' ? 'ran in Chromium' : `${status} (${reason.split('\n')[0]})`;
      groups.set(key, [...(groups.get(key) ?? []), client]);
    }
    console.log(`  ${pkg.name}: ${[...groups].map(([key, names]) => `${names.length} ${key} [${[...new Set(names)].join(', ')}]`).join('; ')}`);
  }
}

/** Prints one check's result; `tally` (e.g. 'npm: CJS') counts it into the closing summary. */
function report(ok, what, detail = '', tally = undefined) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (tally) {
    const count = tallies.get(tally) ?? { passed: 0, total: 0, skipped: 0 };
    tallies.set(tally, { ...count, passed: count.passed + (ok ? 1 : 0), total: count.total + 1 });
  }
  if (!ok) {
    failures.push(what);
    if (detail.trim() !== '') console.log(detail.trim().replace(/^/gm, '     '));
  }
}

/** Prints a check that cannot apply (e.g. a Node-only example in a browser) with the reason; counted apart in the summary. */
function skip(what, reason, tally) {
  console.log(`skip ${what}: ${reason.split('\n')[0]}`);
  const count = tallies.get(tally) ?? { passed: 0, total: 0, skipped: 0 };
  tallies.set(tally, { ...count, skipped: count.skipped + 1 });
}

function run(command, args, options = {}) {
  const ran = spawnSync(command, args, { encoding: 'utf8', timeout: TIMEOUT_MS, ...options });
  return { status: ran.error ? null : ran.status, stdout: ran.stdout ?? '', stderr: ran.stderr ?? (ran.error ? String(ran.error) : '') };
}

function seconds(started) {
  return `${((Date.now() - started) / 1000).toFixed(1)} s`;
}

function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

function parseArguments(args) {
  const parsed = { clients: ['npm', 'pnpm', 'yarn'], skip: [], keep: false };
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--keep') parsed.keep = true;
    else if (args[i] === '--clients') parsed.clients = args[++i].split(',');
    else if (args[i] === '--skip') parsed.skip = args[++i].split(',');
    else throw new Error(`unknown argument ${args[i]} (use --clients npm,pnpm,yarn, --skip @almora/x, --keep)`);
  }
  return parsed;
}

const options = parseArguments(process.argv.slice(2));
const failures = [];
const tallies = new Map();
/** Each example's outcome in the browser: package, client, 'ran' | 'skipped' | 'failed', reason. */
const browserOutcomes = [];
const work = mkdtempSync(path.join(os.tmpdir(), 'almora-release-'));
const began = Date.now();
try {
  await main();
} finally {
  if (options.keep) console.log(`\nkept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
const counted = ({ passed, total, skipped }) =>
  [...(total > 0 ? [`${passed}/${total} passed`] : []), ...(skipped > 0 ? [`${skipped} skipped`] : [])].join(', ');
console.log(
  `\nsummary (${seconds(began)}):\n${[...tallies].map(([what, count]) => (counted(count) === '' ? `  ${what}` : `  ${what}: ${counted(count)}`)).join('\n')}`,
);
if (failures.length > 0) {
  console.log(`\nrelease check: ${failures.length} failed:\n${failures.map((line) => `  ${line}`).join('\n')}`);
  process.exitCode = 1;
} else {
  console.log('\nrelease check: every check passed');
}
