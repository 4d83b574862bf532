import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  return runExample(packageRoot, example);
}

/**
 * The `@example` blocks of the TSDoc in `<packageRoot>/src`, each with the file and the name of the
 * export it documents: the examples the API reference shows, for a test to run.
 */
export function docExamples(packageRoot) {
  const found = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (entry.name.endsWith('.ts')) {
        const source = readFileSync(file, 'utf8');
        for (const match of source.matchAll(
          /@example\s*\n\s*\* ```ts\n([\s\S]*?)\n\s*\* ```\n[\s\S]*?\*\/\s*\nexport (?:async )?(?:function\*? |class |const |interface )(\w+)/g,
        )) {
          const code = match[1]
            .split('\n')
            .map((line) => line.replace(/^\s*\* ?/, ''))
            .join('\n');
          found.push({ file: path.relative(packageRoot, file), symbol: match[2], code });
        }
      }
    }
  };
  walk(path.join(packageRoot, 'src'));
  return found;
}

/** Runs `code` (plain JavaScript, ES module) with Node from a folder inside the package; its output and exit status. */
export function runExample(packageRoot, code) {
  const dir = mkdtempSync(path.join(packageRoot, '.readme-'));
  try {
    writeFileSync(path.join(dir, 'example.mjs'), code);
    const run = spawnSync(process.execPath, [path.join(dir, 'example.mjs')], { encoding: 'utf8' });
    return { status: run.status, stdout: run.stdout, stderr: run.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
