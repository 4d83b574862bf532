import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The ```ts blocks of a README's text, in order: the examples its tests and the release check run. */
export function readmeExamples(markdown) {
  return [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]);
}

/**
 * Runs the `which`-th (default the first) ```ts block of `<packageRoot>/<file>` (README.md by default) with Node, from a
 * folder inside the package so that the package's own name and its dependencies resolve as they
 * would for a user. Returns what it printed and its exit status.
 */
export function runReadmeExample(packageRoot, file = 'README.md', which = 0) {
  const example = readmeExamples(readFileSync(path.join(packageRoot, file), 'utf8'))[which];
  if (!example) throw new Error(`${packageRoot}/${file} has no \`\`\`ts example number ${which + 1}`);
  const dir = mkdtempSync(path.join(packageRoot, '.readme-'));
  try {
    writeFileSync(path.join(dir, 'example.mjs'), example);
    const run = spawnSync(process.execPath, [path.join(dir, 'example.mjs')], { encoding: 'utf8' });
    return { status: run.status, stdout: run.stdout, stderr: run.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
