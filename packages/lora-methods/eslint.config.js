export { default } from '@almora/eslint-config';
