// The build cache sees everything a task reads (#16): the shared configs in tooling/ reach every
// task through `$TURBO_ROOT$` inputs in turbo.json, and an edit to one changes the hash of the
// tasks that read it — so turbo rebuilds instead of replaying an old dist/ — while an edit a task
// does not read leaves its hash, and its cache, alone. (A tooling package's build is a hashed no-op
// task that every `^build` waits on, so a tooling edit also reruns its dependents' lint and
// typecheck: more than needed, never less.)
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const turbo = path.join(root, 'node_modules', '.bin', 'turbo');

/** One task of `turbo run … --dry=json`. */
interface DryTask {
  taskId: string;
  task: string;
  package: string;
  hash: string;
  directory: string;
  inputs: Record<string, string>;
}

function readJson(file: string): { name: string } {
  return JSON.parse(readFileSync(file, 'utf8')) as { name: string };
}

/** The tasks turbo would run in `cwd`, by task id, with their hashes and hashed inputs. */
function dryRun(cwd: string): Map<string, DryTask> {
  const ran = spawnSync(turbo, ['run', 'build', 'typecheck', 'lint', 'test', '--dry=json'], {
    cwd,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1', DO_NOT_TRACK: '1' },
  });
  if (ran.status !== 0) throw new Error(`turbo --dry=json failed in ${cwd}:\n${ran.stderr}`);
  const tasks = (JSON.parse(ran.stdout) as { tasks: DryTask[] }).tasks;
  return new Map(tasks.map((task) => [task.taskId, task]));
}

/** Whether `task` hashed the file at `fromRoot` (a path from the repository root). */
function hashes(task: DryTask, fromRoot: string): boolean {
  return Object.keys(task.inputs).some((input) => path.normalize(path.join(root, task.directory, input)) === path.join(root, fromRoot));
}

/** The tasks of `name` whose package has `file`, each with the shared files it fails to hash. */
function missing(tasks: Map<string, DryTask>, name: string, file: string, shared: string[]): string[] {
  return [...tasks.values()]
    .filter((task) => task.task === name && existsSync(path.join(root, task.directory, file)))
    .flatMap((task) => shared.filter((fromRoot) => !hashes(task, fromRoot)).map((fromRoot) => `${task.taskId} does not hash ${fromRoot}`));
}

describe('turbo inputs', () => {
  const tasks = dryRun(root);

  it('every task hashes the shared configs it reads', () => {
    expect([
      ...missing(tasks, 'build', 'tsup.config.ts', ['tooling/tsup-config/index.js', 'tooling/tsconfig/base.json']),
      ...missing(tasks, 'typecheck', 'tsconfig.json', ['tooling/tsconfig/base.json']),
      ...missing(tasks, 'lint', 'eslint.config.js', ['tooling/eslint-config/index.js']),
      ...missing(tasks, 'test', 'vitest.config.ts', ['tooling/vitest-config/index.js']),
    ]).toEqual([]);
    expect(tasks.get('@almora/tensor#build')).toBeDefined();
  });

  it('every README test hashes its README and the runner of its examples', () => {
    const readmeTests = [...tasks.values()].filter((task) => task.task === 'test' && existsSync(path.join(root, task.directory, 'test', 'readme.test.ts')));
    expect(readmeTests.length).toBeGreaterThan(0);
    expect(
      readmeTests.flatMap((task) =>
        ['README.md', 'tooling/vitest-config/readme.js']
          .filter((file) => !hashes(task, file === 'README.md' ? path.join(task.directory, file) : file))
          .map((file) => `${task.taskId} does not hash ${file}`),
      ),
    ).toEqual([]);
  });
});

describe('an edit in a copy of the repository', () => {
  // A copy of the tracked files, so that edits touch nothing a concurrent task reads.
  const copy = mkdtempSync(path.join(os.tmpdir(), 'almora-turbo-'));
  afterAll(() => rmSync(copy, { recursive: true, force: true }));
  const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' })
    .split('\0')
    .filter((file) => file !== '' && existsSync(path.join(root, file)));
  for (const file of tracked) {
    mkdirSync(path.dirname(path.join(copy, file)), { recursive: true });
    cpSync(path.join(root, file), path.join(copy, file));
  }
  /** The task ids whose hash changes when `text` is appended to `file` (a path in the copy). */
  const changedBy = (file: string, text: string): Set<string> => {
    const before = dryRun(copy);
    appendFileSync(path.join(copy, file), text);
    const after = dryRun(copy);
    return new Set([...before.values()].filter((task) => after.get(task.taskId)?.hash !== task.hash).map((task) => task.taskId));
  };

  it('to the shared tsup config rebuilds every package', () => {
    const changed = changedBy(path.join('tooling', 'tsup-config', 'index.js'), '// edited\n');
    const builds = tracked
      .filter((file) => file.endsWith('/tsup.config.ts'))
      .map((file) => `${readJson(path.join(copy, path.dirname(file), 'package.json')).name}#build`);
    expect(builds.length).toBeGreaterThan(3);
    expect(builds.filter((taskId) => !changed.has(taskId))).toEqual([]);
  });

  it('to the shared tsconfig retypechecks and rebuilds', () => {
    const changed = changedBy(path.join('tooling', 'tsconfig', 'base.json'), '\n');
    expect(changed.has('@almora/tensor#typecheck')).toBe(true);
    expect(changed.has('@almora/tensor#build')).toBe(true);
  });

  it('to a README reruns its tests, not its build', () => {
    const changed = changedBy(path.join('packages', 'tensor', 'README.md'), '\nedited\n');
    expect(changed.has('@almora/tensor#test')).toBe(true);
    expect(changed.has('@almora/tensor#build')).toBe(false);
  });
});
