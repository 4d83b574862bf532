/* global console, URL */
// Writes CLI.md, the command-line reference, from the option table the commands parse (run after a build).
import { writeFileSync } from 'node:fs';
import { cliReference, COMMANDS } from '../dist/index.js';

writeFileSync(new URL('../CLI.md', import.meta.url), cliReference(COMMANDS));
console.log('wrote CLI.md');
