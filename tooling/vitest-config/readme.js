import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Runs the first ```ts block of `<packageRoot>/<file>` (README.md by default) with Node, from a
 * folder inside the package so that the package's own name and its dependencies resolve as they
 * would for a user. Returns what it printed and its exit status.
 */
export function runReadmeExample(packageRoot, file = 'README.md') {
  const readme = readFileSync(path.join(packageRoot, file), 'utf8');
  const example = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  if (!example) throw new Error(`${packageRoot}/${file} has no \`\`\`ts example`);
  const dir = mkdtempSync(path.join(packageRoot, '.readme-'));
  try {
    writeFileSync(path.join(dir, 'example.mjs'), example);
    const run = spawnSync(process.execPath, [path.join(dir, 'example.mjs')], { encoding: 'utf8' });
    return { status: run.status, stdout: run.stdout, stderr: run.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
