export { default } from '@almora/tsup-config';
