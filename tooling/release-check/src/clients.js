// How each package manager installs the packed tarballs into a fresh project (#16). The project
// lists every tarball as a dependency. A package's own range for another (`^0.1.0`) would send the
// client to the registry (npm asks it even with the tarball's copy in place), so each client also
// overrides every package with its tarball in its own way: `fields` of package.json, `setup` files.
// The project's .npmrc points the @almora scope at a closed port, so a package of ours that is not
// taken from a tarball fails to install instead of coming from the registry.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

/** Where the @almora scope's registry points in the test project: nothing listens there. */
export const CLOSED_REGISTRY = 'http://127.0.0.1:9/';
/** The yarn run where none is installed: yarn classic from the npm registry, through npx. */
export const YARN_CLASSIC = 'yarn@1.22.22';

/** Whether `version` (what `yarn --version` printed) is yarn classic (1.x) rather than yarn berry. */
export function isYarnClassic(version) {
  return /^1\./.test(version.trim());
}

/**
 * npm, pnpm and yarn. `commands` are tried in order, the first that answers `--version` is used:
 * yarn's second is yarn classic through npx. `spec` is how package.json names a tarball; `install`,
 * `fields` and `setup` may depend on the version that answered.
 */
export function clients(pnpm) {
  return [
    {
      name: 'npm',
      commands: [['npm', []]],
      spec: (tarball) => `file:${tarball}`,
      install: () => ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'],
      fields: (dependencies) => ({ overrides: Object.fromEntries(Object.keys(dependencies).map((name) => [name, `$${name}`])) }),
      setup: () => ({}),
    },
    {
      name: 'pnpm',
      commands: [pnpm],
      spec: (tarball) => `file:${tarball}`,
      install: () => ['install', '--ignore-scripts'],
      fields: () => ({}),
      setup: (dependencies) => ({
        'pnpm-workspace.yaml': `overrides:\n${Object.entries(dependencies)
          .map(([name, spec]) => `  '${name}': '${spec}'`)
          .join('\n')}\n`,
      }),
    },
    {
      name: 'yarn',
      commands: [
        ['yarn', []],
        ['npx', ['-y', YARN_CLASSIC]],
      ],
      // Relative: yarn classic rewrites a dependency's absolute file: path to a relative one but not
      // a resolution's, and then warns that two patterns unpack to one place.
      spec: (tarball, project) => `file:${path.relative(project, tarball)}`,
      // A cache of the project's own: packed tarballs keep their version (0.0.0) from run to run, and
      // yarn's shared cache would hand back a tarball packed before the code changed.
      install: (version) =>
        isYarnClassic(version) ? ['install', '--ignore-scripts', '--non-interactive', '--no-progress', '--cache-folder', '.yarn-cache'] : ['install'],
      // Classic and berry both read `resolutions`; classic reads the scope's registry from .npmrc.
      fields: (dependencies) => ({ resolutions: dependencies }),
      setup: (_dependencies, version) =>
        isYarnClassic(version)
          ? {}
          : {
              'yarn.lock': '',
              '.yarnrc.yml': `nodeLinker: node-modules\nenableScripts: false\nenableTelemetry: false\nenableGlobalCache: false\nnpmScopes:\n  almora:\n    npmRegistryServer: "${CLOSED_REGISTRY}"\n`,
            },
    },
  ];
}

/**
 * The files of `client`'s fresh project in `project` (version: what its `--version` printed) for
 * `packages` (each a name and a tarball path): package.json with every tarball as a dependency and
 * the client's overrides, the .npmrc that closes our scope, and the client's own files.
 */
export function projectFiles(client, version, packages, project) {
  const dependencies = Object.fromEntries(packages.map((pkg) => [pkg.name, client.spec(pkg.tarball, project)]));
  const manifest = { name: 'almora-release-check', version: '0.0.0', private: true, dependencies, ...client.fields(dependencies) };
  return {
    'package.json': `${JSON.stringify(manifest, null, 2)}\n`,
    '.npmrc': `@almora:registry=${CLOSED_REGISTRY}\n`,
    ...client.setup(dependencies, version),
  };
}

/**
 * The first of `client`'s commands that answers `--version` in `cwd`: the command, its version, and
 * why the ones before it did not answer ('' when the first did); or, with no command, why none did.
 */
export function findCommand(client, cwd) {
  const tried = [];
  for (const command of client.commands) {
    const answered = spawnSync(command[0], [...command[1], '--version'], { cwd, encoding: 'utf8', timeout: 120_000 });
    if (!answered.error && answered.status === 0) return { command, version: answered.stdout.trim(), why: tried.join('; ') };
    const said = `${answered.stderr ?? ''}${answered.stdout ?? ''}`
      .split('\n')
      .filter((line) => line.trim() !== '' && !/complete log/.test(line))
      .slice(0, 2)
      .map((line) => line.replace(/^npm (?:error|ERR!) /, '').trim())
      .join(': ');
    tried.push(tried.length === 0 ? 'not installed here' : `${command.flat().join(' ')} failed (offline?)${said ? `: ${said}` : ''}`);
  }
  return { command: undefined, version: '', why: tried.join('; ') };
}
