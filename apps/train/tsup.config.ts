import { almoraTsup } from '@almora/tsup-config';

export default almoraTsup(['src/cli.ts', 'src/index.ts', 'src/fuzz-cli.ts'], { formats: ['esm'] });
