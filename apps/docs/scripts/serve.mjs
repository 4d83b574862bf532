/* global console, process */
// Serves the built site at http://127.0.0.1:4173/ (or the port given as the first argument).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from './static-server.mjs';

const dist = path.join(path.dirname(path.dirname(fileURLToPath(import.meta.url))), 'dist');
const { url } = await serveStatic(dist, Number(process.argv[2] ?? 4173));
console.log(`almora docs at ${url} (Ctrl-C to stop)`);
