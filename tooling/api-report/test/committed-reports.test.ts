// CI's check of the committed API reports (#16): each public package's packages/<name>/api-report.md
// is what `pnpm api-report` makes from its built types now, so a change to a public API shows up
// in review as a change to that file. Turbo runs this after the packages' builds (they are
// devDependencies here) and hashes the reports and the packages' sources (turbo.json here).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compareReport, publicPackages } from '../src/report.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const packages = publicPackages(root);
const turbo = path.join(root, 'node_modules', '.bin', 'turbo');

describe('the committed API reports', () => {
  it('cover every public package', () => {
    expect(packages.map((pkg) => pkg.name)).toEqual(expect.arrayContaining(['@almora/tensor', '@almora/kernels', '@almora/lora']));
    expect(packages.map((pkg) => pkg.name)).not.toContain('@almora/conformance');
  });

  it.each(packages)('$name: api-report.md matches its built types', (pkg) => {
    const { diff } = compareReport(pkg.dir, root);
    if (diff !== '')
      throw new Error(
        `The public API of ${pkg.name} differs from its committed report:\n${diff}\nIf the change is meant, run \`pnpm api-report\` and commit the report.`,
      );
  });

  it('are checked by turbo after each package builds, and again when a report or a package source changes', () => {
    const ran = spawnSync(turbo, ['run', 'test', '--filter=@almora/api-report', '--dry=json'], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1', DO_NOT_TRACK: '1' },
    });
    expect(ran.status, ran.stderr).toBe(0);
    const tasks = (JSON.parse(ran.stdout) as { tasks: { taskId: string; directory: string; dependencies: string[]; inputs: Record<string, string> }[] }).tasks;
    const test = tasks.find((task) => task.taskId === '@almora/api-report#test')!;
    const hashed = new Set(Object.keys(test.inputs).map((input) => path.relative(root, path.join(root, test.directory, input))));
    const missing = packages.flatMap((pkg) => {
      const folder = path.relative(root, pkg.dir);
      return [
        ...[path.join(folder, 'api-report.md'), path.join(folder, 'src', 'index.ts')]
          .filter((file) => !hashed.has(file))
          .map((file) => `does not hash ${file}`),
        ...(test.dependencies.includes(`${pkg.name}#build`) ? [] : [`does not wait for ${pkg.name}#build`]),
      ];
    });
    expect(missing).toEqual([]);
  });
});
