import { afterEach, describe, expect, it, vi } from 'vitest';
import { Progress, type ProgressStream } from '../src/index.js';
import { formatDuration } from '../src/progress.js';

/** A stream that records what it was given. */
function recorder(isTTY: boolean): ProgressStream & { text: () => string } {
  const written: string[] = [];
  return { isTTY, columns: 100, write: (chunk: string) => written.push(chunk), text: () => written.join('') };
}

describe('Progress', () => {
  afterEach(() => vi.useRealTimers());

  it('redraws one line per step on a terminal, with elapsed time and time left, clamped to the total, resuming where told', () => {
    vi.useFakeTimers();
    const stream = recorder(true);
    const progress = new Progress(false, stream);
    progress.start('run', 4, 1);
    vi.advanceTimersByTime(2000);
    progress.tick('a');
    vi.advanceTimersByTime(2000);
    progress.tick('b');
    progress.tick('c');
    progress.tick('past the end');
    progress.finish();
    const out = stream.text();
    expect(out).toContain('1/4 0s elapsed ');
    // One step in 2 s, two to go: 4 s left (the resumed step does not count toward the pace).
    expect(out).toContain('2/4 2s elapsed, 4s left · a');
    expect(out).toContain('3/4 4s elapsed, 2s left · b');
    expect(out).toContain('4/4 4s elapsed, 0s left · past the end');
    expect(out).not.toContain('5/4');
    expect(out.startsWith('\r')).toBe(true);
    expect(out.endsWith('\n')).toBe(true);
  });

  it('writes plain lines when not on a terminal: the first, then at most one per 10 s, and the last', () => {
    vi.useFakeTimers();
    const stream = recorder(false);
    const progress = new Progress(false, stream);
    progress.start('steps', 3);
    progress.tick('loss 2.1');
    vi.advanceTimersByTime(11_000);
    progress.tick('loss 1.9');
    progress.tick('loss 1.8');
    progress.finish();
    expect(
      stream
        .text()
        .split('\n')
        .filter((l) => l !== ''),
    ).toEqual(['steps: 0/3 (0%), 0s elapsed', 'steps: 2/3 (66%), 11s elapsed, 6s left · loss 1.9', 'steps: 3/3 (100%), 11s elapsed, 0s left · loss 1.8']);
  });

  it('is silent when quiet', () => {
    for (const isTTY of [true, false]) {
      const stream = recorder(isTTY);
      const progress = new Progress(true, stream);
      progress.start('run', 2);
      progress.tick();
      progress.finish();
      expect(stream.text()).toBe('');
    }
  });

  it('formats durations', () => {
    expect([formatDuration(9.4), formatDuration(245), formatDuration(3720), formatDuration(Number.NaN)]).toEqual(['9s', '4m05s', '1h02m', '?']);
  });
});
