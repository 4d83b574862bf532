import { almoraTsup } from '@almora/tsup-config';

export default almoraTsup(['src/index.ts'], { formats: ['esm'] });
