/* global URL */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';

/** Debian's chromium (`apt-get install chromium`). */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * No sandbox (CI runs as root), no network chatter (this machine's network is closed), SwiftShader
 * for WebGL2 and WebGPU (which is behind a flag in Chromium on Linux).
 */
export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-unsafe-swiftshader',
  '--enable-unsafe-webgpu',
];

/** Whether Chromium is installed where the launcher looks. */
export function chromiumInstalled() {
  return existsSync(CHROMIUM);
}

/** Headless Chromium with a fresh profile; `close` also removes the profile. */
export async function launchChromium(extraFlags = []) {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'almora-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_FLAGS, ...extraFlags] });
  return {
    context,
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Bundles `entry` for the browser and serves it as the module script of a blank page on 127.0.0.1.
 * With `isolated`, every response carries the COOP/COEP headers that make the page cross-origin
 * isolated, which SharedArrayBuffer (and so threads over shared WebAssembly memory) requires. With
 * `importMap` (`{ imports: { specifier: url } }`), the page declares it before the module script, so
 * it also answers the specifiers the bundle leaves to the browser (a dynamic `import(name)`).
 */
export async function servePage(entry, options = {}) {
  const bundle = await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'browser', write: false, logLevel: 'silent' });
  const script = bundle.outputFiles[0].text;
  const importMap = options.importMap ? `<script type="importmap">${JSON.stringify(options.importMap).replace(/</g, '\\u003c')}</script>` : '';
  const isolation = options.isolated ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' } : {};
  const server = createServer((request, response) => {
    if (new URL(request.url ?? '/', 'http://127.0.0.1').pathname === '/entry.js')
      response.writeHead(200, { 'content-type': 'text/javascript', ...isolation }).end(script);
    else
      response.writeHead(200, { 'content-type': 'text/html', ...isolation }).end(`<!doctype html>${importMap}<script type="module" src="/entry.js"></script>`);
  });
  // Idle keep-alive sockets stay open (Node's 5 s default races a client reusing one: ECONNRESET).
  server.keepAliveTimeout = 0;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  // Closing also ends the browser's keep-alive connections, which would hold the server open while that browser lives.
  const close = () =>
    new Promise((resolve) => {
      server.close(() => resolve(undefined));
      server.closeAllConnections();
    });
  return { url: `http://127.0.0.1:${port}/`, close };
}

/**
 * Serves `entry` (see `servePage`), opens it in a fresh headless Chromium and collects every
 * console error and page error into `errors`, waiting until `ready` (a global function name) is
 * defined. `close` shuts the browser and the server.
 */
export async function openEntry(entry, options = {}) {
  const page = await servePage(entry, options);
  const browser = await launchChromium();
  const tab = await browser.context.newPage();
  const errors = [];
  tab.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  tab.on('pageerror', (error) => errors.push(error.message));
  await tab.goto(page.url);
  if (options.ready) await tab.waitForFunction((name) => typeof window[name] === 'function', options.ready);
  return {
    tab,
    errors,
    close: async () => {
      await browser.close();
      await page.close();
    },
  };
}
