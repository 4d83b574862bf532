import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Debian's python3 with its python3-torch and python3-numpy (linked against the system BLAS), not any virtualenv's on PATH. */
export const PYTHON = '/usr/bin/python3';

/** A peer script in apps/bench/peers, found from this bundle upwards (it runs from dist/ and from src/ in tests). */
export function peerScript(name: string): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (dir !== path.dirname(dir)) {
    const candidate = path.join(dir, 'peers', name);
    if (existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  return undefined;
}
