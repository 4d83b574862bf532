/** A one-line progress bar on stderr; silent when stderr is not a terminal or when quiet. */
export class Progress {
  private done = 0;
  private total = 0;
  private label = '';
  private readonly enabled: boolean;

  constructor(quiet = false) {
    this.enabled = !quiet && process.stderr.isTTY === true;
  }

  /** Starts a new bar of `total` steps, `done` of them already behind (a resumed run). */
  start(label: string, total: number, done = 0): void {
    this.label = label;
    this.total = Math.max(total, 1);
    this.done = Math.min(done, this.total);
    this.draw('');
  }

  /** Advances one step; `detail` says what just finished. */
  tick(detail = ''): void {
    this.done = Math.min(this.done + 1, this.total);
    this.draw(detail);
  }

  /** Ends the bar and moves to a new line. */
  finish(): void {
    if (this.enabled) process.stderr.write('\n');
  }

  private draw(detail: string): void {
    if (!this.enabled) return;
    const width = 28;
    const filled = Math.round((this.done / this.total) * width);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const line = `${this.label} ${bar} ${this.done}/${this.total} ${detail}`;
    process.stderr.write(`\r${line.slice(0, (process.stderr.columns ?? 100) - 1).padEnd(Math.min(process.stderr.columns ?? 100, 100) - 1)}`);
  }
}
