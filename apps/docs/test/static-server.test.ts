import { mkdtempSync, writeFileSync } from 'node:fs';
import { Agent, get } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { serveStatic } from '../scripts/static-server.mjs';

function fetchWith(agent: Agent, url: string): Promise<{ status: number; body: string; isolation: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          body,
          isolation: `${response.headers['cross-origin-opener-policy']} ${response.headers['cross-origin-embedder-policy']}`,
        }),
      );
    }).on('error', reject);
  });
}

describe('the static server', () => {
  it('serves files cross-origin isolated, 404s what is missing, and refuses paths outside its root', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'almora-static-'));
    writeFileSync(path.join(root, 'index.html'), '<p>hi</p>');
    const site = await serveStatic(root);
    const agent = new Agent({ keepAlive: true });
    try {
      expect(await fetchWith(agent, site.url)).toEqual({ status: 200, body: '<p>hi</p>', isolation: 'same-origin require-corp' });
      expect((await fetchWith(agent, new URL('missing.svg', site.url).href)).status).toBe(404);
      expect((await fetchWith(agent, new URL('/..%2f..%2fetc%2fpasswd', site.url).href)).status).toBe(403);
    } finally {
      agent.destroy();
      await site.close();
    }
  });

  // The crawl test once failed in CI with ECONNRESET: Node's default closes a keep-alive socket
  // after 5 s idle, racing a client that reuses it at that moment.
  it('keeps an idle keep-alive socket open past Node’s 5 s default, and close() still ends it', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'almora-static-'));
    writeFileSync(path.join(root, 'a.svg'), '<svg/>');
    const site = await serveStatic(root);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      await fetchWith(agent, new URL('a.svg', site.url).href);
      const socket = Object.values(agent.freeSockets).flat()[0]!;
      let closedBy = '';
      socket.on('close', () => (closedBy ||= 'server while idle'));
      await new Promise((resolve) => setTimeout(resolve, 7_500));
      expect(closedBy).toBe('');
      const closing = new Promise((resolve) => socket.on('close', resolve));
      closedBy = 'close()';
      await site.close();
      await closing;
    } finally {
      agent.destroy();
    }
  }, 20_000);
});
