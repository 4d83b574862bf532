import { defineConfig } from 'tsup';

/**
 * ESM and CommonJS with their .d.ts and .d.cts types and source maps, for Node 20+ and current
 * browsers: dist/index.js for `import`, dist/index.cjs for `require` (a package's exports map names
 * both). `entries` are the files to bundle; types are emitted for `src/index.ts`, the public API,
 * without what is marked `@internal`.
 * Apps, which nobody requires, pass `{ formats: ['esm'] }`.
 */
export function almoraTsup(entries = ['src/index.ts'], { formats = ['esm', 'cjs'] } = {}) {
  return defineConfig({
    entry: entries,
    format: formats,
    // @internal members (a constructor only the package's own factory calls) stay out of the types.
    dts: { entry: 'src/index.ts', compilerOptions: { stripInternal: true } },
    sourcemap: true,
    clean: true,
    target: 'es2022',
  });
}

export default almoraTsup();
