import { afterEach, describe, expect, it, vi } from 'vitest';
import { Progress } from '../src/index.js';

/** Runs `body` with stderr looking like a terminal (or not) and returns what it wrote there. */
function stderrOf(isTTY: boolean, body: () => void): string {
  const tty = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY');
  Object.defineProperty(process.stderr, 'isTTY', { value: isTTY, configurable: true });
  const written: string[] = [];
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  try {
    body();
  } finally {
    write.mockRestore();
    if (tty) Object.defineProperty(process.stderr, 'isTTY', tty);
    else delete (process.stderr as { isTTY?: boolean }).isTTY;
  }
  return written.join('');
}

describe('Progress', () => {
  afterEach(() => vi.restoreAllMocks());

  it('draws one line per step on a terminal, clamped to the total, resuming where told', () => {
    const out = stderrOf(true, () => {
      const progress = new Progress();
      progress.start('run', 3, 1);
      progress.tick('a');
      progress.tick('b');
      progress.tick('past the end');
      progress.finish();
    });
    expect(out).toContain('run ');
    expect(out).toContain('1/3');
    expect(out).toContain('2/3 a');
    expect(out).toContain('3/3 b');
    expect(out).toContain('3/3 past the end');
    expect(out).not.toContain('4/3');
    expect(out.endsWith('\n')).toBe(true);
  });

  it('is silent when quiet or when stderr is not a terminal', () => {
    for (const [isTTY, quiet] of [[true, true], [false, false]] as const) {
      const out = stderrOf(isTTY, () => {
        const progress = new Progress(quiet);
        progress.start('run', 2);
        progress.tick();
        progress.finish();
      });
      expect(out).toBe('');
    }
  });
});
