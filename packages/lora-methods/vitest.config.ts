export { default } from '@almora/vitest-config';
