import { defineConfig } from 'tsup';

/**
 * ESM with .d.ts types and source maps, for Node 20+ and current browsers. `entries` are the files
 * to bundle; types are emitted for `src/index.ts`, the public API.
 */
export function almoraTsup(entries = ['src/index.ts']) {
  return defineConfig({
    entry: entries,
    format: ['esm'],
    dts: { entry: 'src/index.ts' },
    sourcemap: true,
    clean: true,
    target: 'es2022',
  });
}

export default almoraTsup();
