import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readmeExamples } from '@almora/vitest-config/readme';
import { describe, expect, it } from 'vitest';
import { splitImports, toCommonJs, toCommonJsTypeScript } from '../src/commonjs.js';

const packages = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'packages');

describe('toCommonJs', () => {
  it('turns each import form the READMEs use into a require and wraps the rest for top-level await', () => {
    const example = [
      "import { Rng, randomNormal as normal } from '@almora/tensor';",
      'import {',
      '  loraGradients,',
      "} from '@almora/lora';",
      "import * as kernels from '@almora/kernels';",
      "import 'node:process';",
      '',
      'const rng = new Rng(1);',
      'const backend = await open(); // comment',
    ].join('\n');
    expect(toCommonJs(example)).toBe(
      [
        "'use strict';",
        'const { Rng, randomNormal: normal } = require("@almora/tensor");',
        'const { loraGradients } = require("@almora/lora");',
        'const kernels = require("@almora/kernels");',
        'require("node:process");',
        '(async () => {',
        'const rng = new Rng(1);',
        'const backend = await open(); // comment',
        '})();',
        '',
      ].join('\n'),
    );
  });

  it('keeps the imports as written for a .cts file', () => {
    const cts = toCommonJsTypeScript("import { a } from 'x';\nconsole.log(await a());\n");
    expect(cts).toBe("import { a } from 'x';\n(async () => {\nconsole.log(await a());\n})();\n");
  });

  it('refuses forms it would have to guess at', () => {
    expect(() => toCommonJs("import tensor from '@almora/tensor';\n")).toThrow(/cannot convert/);
    expect(() => toCommonJs("import type { Matrix } from '@almora/tensor';\n")).toThrow(/cannot convert/);
  });

  it('leaves dynamic imports and lines that only mention import alone', () => {
    const { imports, body } = splitImports("const m = await import('x');\n// import { a } from 'y' is how\n");
    expect(imports).toEqual([]);
    expect(body).toContain("await import('x')");
  });
});

describe('every README example of a public package', () => {
  const examples = readdirSync(packages)
    .filter((name) => existsSync(path.join(packages, name, 'README.md')))
    .filter((name) => !JSON.parse(readFileSync(path.join(packages, name, 'package.json'), 'utf8')).private)
    .flatMap((name) =>
      readmeExamples(readFileSync(path.join(packages, name, 'README.md'), 'utf8')).map((example, i) => ({ name: `${name} #${i + 1}`, example })),
    );

  it.each(examples)('$name converts to CommonJS that Node parses, requiring what it imported', ({ example }) => {
    const cjs = toCommonJs(example);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'almora-cjs-'));
    try {
      writeFileSync(path.join(dir, 'example.cjs'), cjs);
      const checked = spawnSync(process.execPath, ['--check', path.join(dir, 'example.cjs')], { encoding: 'utf8' });
      expect(checked.stderr).toBe('');
      expect(checked.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const imported = splitImports(example).imports.map((entry) => entry.specifier);
    expect(imported.length).toBeGreaterThan(0);
    expect([...cjs.matchAll(/require\("([^"]+)"\)/g)].map((match) => match[1])).toEqual(imported);
    expect(cjs).not.toMatch(/^import\s/m);
  });
});
