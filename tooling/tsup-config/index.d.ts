import type { Options } from 'tsup';

/** ESM + CommonJS (or the given `formats`) with .d.ts/.d.cts types and source maps for the given entries (types from src/index.ts). */
export function almoraTsup(
  entries?: string[],
  options?: { formats?: ('esm' | 'cjs')[] },
): Options | Options[] | ((overrideOptions: Options) => Options | Options[] | Promise<Options | Options[]>);
declare const config: ReturnType<typeof almoraTsup>;
export default config;
