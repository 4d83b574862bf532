import almora from '@almora/eslint-config';

// test/fixture stands for a package's built types (dist/index.d.ts), which are not linted either.
export default [...almora, { ignores: ['test/fixture/**'] }];
