import type { Options } from 'tsup';

/** ESM + .d.ts + source maps for the given entries (types from src/index.ts). */
export function almoraTsup(entries?: string[]): Options | Options[] | ((overrideOptions: Options) => Options | Options[] | Promise<Options | Options[]>);
declare const config: ReturnType<typeof almoraTsup>;
export default config;
