import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLOSED_REGISTRY, clients, findCommand, isYarnClassic, projectFiles, YARN_CLASSIC, type Client } from '../src/clients.js';

const [npm, pnpm, yarn] = clients(['npx', ['-y', 'pnpm@12.4.2']]) as [Client, Client, Client];
const work = '/tmp/almora-release-x';
const project = path.join(work, 'with-client');
const packages = [
  { name: '@almora/tensor', tarball: path.join(work, 'tarballs', 'almora-tensor-0.1.0.tgz') },
  { name: '@almora/lora', tarball: path.join(work, 'tarballs', 'almora-lora-0.1.0.tgz') },
];
const manifest = (files: Record<string, string>) =>
  JSON.parse(files['package.json']) as { dependencies: Record<string, string>; resolutions?: Record<string, string>; overrides?: Record<string, string> };

describe('the yarn project', () => {
  it('runs an installed yarn first, else yarn classic from the npm registry through npx', () => {
    expect(yarn.commands).toEqual([
      ['yarn', []],
      ['npx', ['-y', YARN_CLASSIC]],
    ]);
    expect(YARN_CLASSIC).toBe('yarn@1.22.22');
    expect([isYarnClassic('1.22.22\n'), isYarnClassic('4.5.1'), isYarnClassic('10.0.0')]).toEqual([true, false, false]);
  });

  it('with yarn classic: each tarball a dependency and a resolution, by a path relative to the project, our scope closed', () => {
    const files = projectFiles(yarn, '1.22.22', packages, project);
    const { dependencies, resolutions } = manifest(files);
    expect(dependencies).toEqual({ '@almora/tensor': 'file:../tarballs/almora-tensor-0.1.0.tgz', '@almora/lora': 'file:../tarballs/almora-lora-0.1.0.tgz' });
    expect(resolutions).toEqual(dependencies);
    for (const pkg of packages) expect(path.resolve(project, dependencies[pkg.name].slice('file:'.length))).toBe(pkg.tarball);
    expect(files['.npmrc']).toBe(`@almora:registry=${CLOSED_REGISTRY}\n`);
    expect(Object.keys(files).sort()).toEqual(['.npmrc', 'package.json']);
    expect(yarn.install('1.22.22')).toEqual(['install', '--ignore-scripts', '--non-interactive', '--no-progress', '--cache-folder', '.yarn-cache']);
  });

  it('with yarn berry: its own .yarnrc.yml closes our scope and turns scripts off', () => {
    const files = projectFiles(yarn, '4.5.1', packages, project);
    expect(manifest(files).resolutions).toEqual(manifest(files).dependencies);
    expect(files['.yarnrc.yml']).toContain(`npmScopes:\n  almora:\n    npmRegistryServer: "${CLOSED_REGISTRY}"`);
    expect(files['.yarnrc.yml']).toContain('enableScripts: false');
    // Its own cache: a tarball packed again at the same version must not come back from the shared one.
    expect(files['.yarnrc.yml']).toContain('enableGlobalCache: false');
    expect(files['yarn.lock']).toBe('');
    expect(yarn.install('4.5.1')).toEqual(['install']);
  });
});

describe('findCommand', () => {
  const client = (commands: Client['commands']): Client => ({ ...yarn, commands });
  const missing = ['almora-release-check-no-such-command', []] as const;

  it('takes the first command that answers, saying why the ones before did not', () => {
    expect(findCommand(client([[process.execPath, []], missing]), os.tmpdir())).toEqual({ command: [process.execPath, []], version: process.version, why: '' });
    expect(findCommand(client([missing, [process.execPath, []]]), os.tmpdir())).toMatchObject({ version: process.version, why: 'not installed here' });
  });

  it('says why none answered: not installed, and the fallback failed with its first lines', () => {
    const script = path.join(mkdtempSync(path.join(os.tmpdir(), 'almora-offline-')), 'offline.cjs');
    writeFileSync(
      script,
      "console.error('npm error code ENOTCACHED\\nnpm error request to x failed\\nnpm error A complete log of this run can be found in: y');\nprocess.exit(1);\n",
    );
    const failing = [process.execPath, [script]] as const;
    expect(findCommand(client([missing, failing]), os.tmpdir())).toEqual({
      command: undefined,
      version: '',
      why: `not installed here; ${failing.flat().join(' ')} failed (offline?): code ENOTCACHED: request to x failed`,
    });
    rmSync(path.dirname(script), { recursive: true, force: true });
  });
});

describe('the npm and pnpm projects, as before', () => {
  it('npm: absolute file: tarballs, each package overridden by its own dependency', () => {
    const { dependencies, overrides } = manifest(projectFiles(npm, '11.0.0', packages, project));
    expect(dependencies['@almora/lora']).toBe(`file:${packages[1].tarball}`);
    expect(overrides).toEqual({ '@almora/tensor': '$@almora/tensor', '@almora/lora': '$@almora/lora' });
  });

  it('pnpm: absolute file: tarballs, each overridden in pnpm-workspace.yaml', () => {
    const files = projectFiles(pnpm, '12.4.2', packages, project);
    expect(manifest(files).dependencies['@almora/tensor']).toBe(`file:${packages[0].tarball}`);
    expect(files['pnpm-workspace.yaml']).toBe(
      `overrides:\n  '@almora/tensor': 'file:${packages[0].tarball}'\n  '@almora/lora': 'file:${packages[1].tarball}'\n`,
    );
    expect(pnpm.commands).toEqual([['npx', ['-y', 'pnpm@12.4.2']]]);
  });
});

// Two tiny packages, one depending on the other by a registry range, installed by yarn classic from
// their tarballs: the resolutions must send the inner dependency to its tarball, since our scope's
// registry is a closed port.
const yarnClassic = ['npx', ['-y', YARN_CLASSIC]] as const;
const answered = spawnSync(yarnClassic[0], [...yarnClassic[1], '--version'], { encoding: 'utf8', timeout: 120_000 });
if (answered.status !== 0)
  console.warn(`skipping the yarn classic install: npx -y ${YARN_CLASSIC} failed (offline?): ${answered.stderr.trim().split('\n').at(-1)}`);
describe.runIf(answered.status === 0)(`npx -y ${YARN_CLASSIC} installing two packed packages`, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'almora-yarn-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const pack = (name: string, version: string, dependencies: Record<string, string>, main: string) => {
    const folder = path.join(dir, 'src', name.replace('/', '-'), 'package');
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, 'package.json'), JSON.stringify({ name, version, main: 'index.js', dependencies }));
    writeFileSync(path.join(folder, 'index.js'), main);
    const tarball = path.join(dir, 'tarballs', `${name.replace('@', '').replace('/', '-')}-${version}.tgz`);
    mkdirSync(path.dirname(tarball), { recursive: true });
    expect(spawnSync('tar', ['-czf', tarball, '-C', path.dirname(folder), 'package']).status).toBe(0);
    return { name, tarball };
  };
  const tarballs = [
    pack('@almora/leaf', '1.2.3', {}, 'module.exports = 41;\n'),
    pack('@almora/stem', '1.2.3', { '@almora/leaf': '^1.2.3' }, "module.exports = require('@almora/leaf') + 1;\n"),
  ];
  const install = (name: string, edit: (files: Record<string, string>) => Record<string, string>, extra: string[] = []) => {
    const at = path.join(dir, name);
    mkdirSync(at);
    for (const [file, text] of Object.entries(edit(projectFiles(yarn, answered.stdout, tarballs, at)))) writeFileSync(path.join(at, file), text);
    const env = { ...process.env, YARN_CACHE_FOLDER: path.join(dir, 'cache') };
    return {
      at,
      ...spawnSync(yarnClassic[0], [...yarnClassic[1], ...yarn.install(answered.stdout), ...extra], { cwd: at, encoding: 'utf8', env, timeout: 120_000 }),
    };
  };

  it('takes both from their tarballs', () => {
    const installed = install('with-resolutions', (files) => files);
    expect(installed.stderr).not.toMatch(/error|warning Pattern/);
    expect(installed.status).toBe(0);
    expect(JSON.parse(readFileSync(path.join(installed.at, 'node_modules', '@almora', 'leaf', 'package.json'), 'utf8')).version).toBe('1.2.3');
    const ran = spawnSync(process.execPath, ['-p', "require('@almora/stem')"], { cwd: installed.at, encoding: 'utf8' });
    expect(ran.stdout.trim()).toBe('42');
  });

  it('without the resolutions, asks the closed registry for the inner one and fails', () => {
    const installed = install(
      'without-resolutions',
      (files) => {
        const {
          name,
          version,
          private: closed,
          dependencies,
        } = JSON.parse(files['package.json']) as Record<string, unknown> & { dependencies: Record<string, string> };
        return { ...files, 'package.json': JSON.stringify({ name, version, private: closed, dependencies: { '@almora/stem': dependencies['@almora/stem'] } }) };
      },
      ['--verbose'],
    );
    expect(installed.status).not.toBe(0);
    expect(installed.stdout + installed.stderr).toContain(`request to "${CLOSED_REGISTRY}@almora%2fleaf"`);
    expect(installed.stdout + installed.stderr).toMatch(/@almora\/leaf@\^1\.2\.3/);
  });
});
