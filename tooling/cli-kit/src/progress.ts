/** Where {@link Progress} writes: stderr, or a stand-in with the same two members (tests). */
export interface ProgressStream {
  write(text: string): unknown;
  /** A terminal redraws one line in place; anything else gets plain lines. */
  isTTY?: boolean;
  /** Terminal width, when a terminal. */
  columns?: number;
}

/** Plain (non-terminal) lines come at most this often, besides the first and the last. */
const PLAIN_INTERVAL_MS = 10_000;

/** Seconds as 9s, 4m05s or 1h02m. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Progress on stderr: on a terminal, one line redrawn in place with a bar, the count, the time
 * elapsed and the time left; elsewhere (a log file, CI), plain lines now and then, so a log still
 * says how far a long run got. Silent when quiet.
 */
export class Progress {
  private done = 0;
  private total = 0;
  private label = '';
  private startedAt = 0;
  private startDone = 0;
  private lastPlain = -Infinity;
  private readonly enabled: boolean;
  private readonly stream: ProgressStream;

  constructor(quiet = false, stream: ProgressStream = process.stderr) {
    this.enabled = !quiet;
    this.stream = stream;
  }

  /** Starts a new bar of `total` steps, `done` of them already behind (a resumed run: the time left counts only this run's pace). */
  start(label: string, total: number, done = 0): void {
    this.label = label;
    this.total = Math.max(total, 1);
    this.done = Math.min(done, this.total);
    this.startDone = this.done;
    this.startedAt = performance.now();
    this.lastPlain = -Infinity;
    this.draw('');
  }

  /** Advances one step; `detail` says what just finished. */
  tick(detail = ''): void {
    this.done = Math.min(this.done + 1, this.total);
    this.draw(detail);
  }

  /** Ends the bar and moves to a new line. */
  finish(): void {
    if (this.enabled && this.stream.isTTY) this.stream.write('\n');
  }

  private width(): number {
    return Math.min(this.stream.columns ?? 100, 120) - 1;
  }

  /** Elapsed and estimated remaining seconds of this run. */
  private times(): { elapsed: number; left: number | undefined } {
    const elapsed = (performance.now() - this.startedAt) / 1000;
    const steps = this.done - this.startDone;
    return { elapsed, left: steps > 0 ? (elapsed / steps) * (this.total - this.done) : undefined };
  }

  private draw(detail: string): void {
    if (!this.enabled) return;
    const { elapsed, left } = this.times();
    const clock = `${formatDuration(elapsed)} elapsed${left === undefined ? '' : `, ${formatDuration(left)} left`}`;
    if (this.stream.isTTY) {
      const width = 24;
      const filled = Math.round((this.done / this.total) * width);
      const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
      const line = `${this.label} ${bar} ${this.done}/${this.total} ${clock}${detail ? ` · ${detail}` : ''}`;
      this.stream.write(`\r${line.slice(0, this.width()).padEnd(this.width())}`);
      return;
    }
    const now = performance.now();
    const last = this.done === this.total;
    if (!last && this.done !== this.startDone && now - this.lastPlain < PLAIN_INTERVAL_MS) return;
    this.lastPlain = now;
    const percent = Math.floor((100 * this.done) / this.total);
    this.stream.write(`${this.label}: ${this.done}/${this.total} (${percent}%), ${clock}${detail ? ` · ${detail}` : ''}\n`);
  }
}
