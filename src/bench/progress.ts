/**
 * Progress of a benchmark run on stderr: on a terminal one status line rewritten in place (section, step, what is
 * running, elapsed time); otherwise one plain line per step, so a CI log still shows where a run got to. Permanent
 * lines (section results, warnings) are printed above the status line.
 */

export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
  /** Force in-place (true) or line-per-step (false) output; by default in place only on a TTY. */
  tty?: boolean;
  /** Print nothing at all (tests). */
  silent?: boolean;
}

export class Progress {
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly silent: boolean;
  private readonly t0 = Date.now();
  private sectionIndex = 0;
  private sectionCount = 0;
  private title = '';
  private steps = 0;
  private done = 0;
  private detail = '';
  private lineShown = false;
  private timer?: NodeJS.Timeout;

  constructor(opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? this.stream.isTTY === true;
    this.silent = opts.silent === true;
    // Keep the elapsed clock moving while a long step runs; unref so it never holds the process open.
    if (this.tty && !this.silent) {
      this.timer = setInterval(() => this.render(), 1000);
      this.timer.unref();
    }
  }

  setSectionCount(n: number): void {
    this.sectionCount = n;
  }

  /** Starts a section of `steps` steps (a step is one measured condition of one round). */
  begin(title: string, steps: number): void {
    this.sectionIndex++;
    this.title = title;
    this.steps = Math.max(1, steps);
    this.done = 0;
    this.detail = 'starting';
    this.log(`[${this.sectionIndex}/${this.sectionCount}] ${title}`);
  }

  /** A step begins: shows what runs now. */
  step(detail: string): void {
    this.detail = detail;
    if (this.tty) this.render();
    else this.write(`  ${this.counter()} ${detail}\n`);
  }

  /** The current step finished. */
  tick(): void {
    this.done = Math.min(this.steps, this.done + 1);
    if (this.tty) this.render();
  }

  /** Extra status within a step (in place only; never floods a log). */
  status(detail: string): void {
    this.detail = detail;
    if (this.tty) this.render();
  }

  /** A permanent line. */
  log(line: string): void {
    this.clear();
    this.write(`${line}\n`);
    if (this.tty) this.render();
  }

  finish(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }

  private counter(): string {
    return `${this.done}/${this.steps}`;
  }

  private elapsed(): string {
    const s = Math.round((Date.now() - this.t0) / 1000);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  }

  private render(): void {
    if (!this.tty || this.silent || !this.title) return;
    const width = Math.max(40, (this.stream.columns ?? 100) - 1);
    const pct = Math.round((this.done / this.steps) * 100);
    const bar = '#'.repeat(Math.round(pct / 10)).padEnd(10, '.');
    const line = `[${this.sectionIndex}/${this.sectionCount}] ${this.title} [${bar}] ${this.counter()} ${this.elapsed()} · ${this.detail}`;
    this.write(`\r\x1b[2K${line.length > width ? line.slice(0, width - 1) + '…' : line}`);
    this.lineShown = true;
  }

  private clear(): void {
    if (this.tty && this.lineShown) this.write('\r\x1b[2K');
    this.lineShown = false;
  }

  private write(s: string): void {
    if (!this.silent) this.stream.write(s);
  }
}
