import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Lint rules shared by every almora package: strict TypeScript, no `any`, no unused code. */
export default tseslint.config({ ignores: ['dist/**', 'node_modules/**', 'results/**', 'coverage/**'] }, js.configs.recommended, ...tseslint.configs.strict, {
  rules: {
    '@typescript-eslint/no-explicit-any': 'error',
    '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    '@typescript-eslint/no-non-null-assertion': 'off',
    'no-constant-condition': ['error', { checkLoops: false }],
  },
});
