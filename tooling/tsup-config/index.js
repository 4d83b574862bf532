import { defineConfig } from 'tsup';

/**
 * ESM and CommonJS with their .d.ts and .d.cts types and source maps, for Node 20+ and current
 * browsers: dist/index.js for `import`, dist/index.cjs for `require` (a package's exports map names
 * both). `entries` are the files to bundle; types are emitted for `src/index.ts`, the public API.
 * Apps, which nobody requires, pass `{ formats: ['esm'] }`.
 */
export function almoraTsup(entries = ['src/index.ts'], { formats = ['esm', 'cjs'] } = {}) {
  return defineConfig({
    entry: entries,
    format: formats,
    dts: { entry: 'src/index.ts' },
    sourcemap: true,
    clean: true,
    target: 'es2022',
  });
}

export default almoraTsup();
