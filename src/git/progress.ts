/**
 * Progress meters in git's words and format ("Counting objects: 100%
 * (5/5), done."), updated at most twice a second so a fast walk does not
 * spend its time talking about itself.
 */

export type ProgressSink = (text: string) => void;

const INTERVAL_MS = 500;

export class Progress {
  private last = 0;
  private shown = false;
  private count = 0;

  constructor(
    private readonly sink: ProgressSink | null,
    private readonly title: string,
    private readonly total = 0,
  ) {}

  private line(n: number): string {
    if (!this.total) return `${this.title}: ${n}`;
    const pct = Math.floor((n * 100) / this.total);
    return `${this.title}: ${String(pct).padStart(3)}% (${n}/${this.total})`;
  }

  /** Sets the current count; shows it if enough time has passed. */
  update(n: number): void {
    this.count = n;
    if (!this.sink) return;
    const now = Date.now();
    if (now - this.last < INTERVAL_MS) return;
    this.last = now;
    this.shown = true;
    this.sink(this.line(n) + '\r');
  }

  /** Counts one more (cheap enough for a per-object call). */
  tick(by = 1): void {
    this.count += by;
    if ((this.count & 1023) === 0 || by > 1) this.update(this.count);
  }

  done(n = this.count): void {
    if (!this.sink) return;
    this.shown = true;
    this.sink(this.line(n) + ', done.\n');
  }

  get visible(): boolean {
    return this.shown;
  }
}
