import { almoraTsup } from '@almora/tsup-config';

// Private to this workspace (it ships the base model and reads the Brown corpus from disk): ESM only, like the apps.
export default almoraTsup(['src/index.ts'], { formats: ['esm'] });
