/**
 * A fixed-capacity ring: the history the server keeps (ticks, decisions, overhead samples) never grows past its
 * capacity however long the agent runs.
 */
export class Ring<T> {
  private readonly items: (T | undefined)[];
  private head = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`ring capacity must be a positive integer, got ${capacity}`);
    this.items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.count;
  }

  push(item: T): void {
    this.items[this.head] = item;
    this.head = (this.head + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** Oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    const start = (this.head - this.count + this.capacity) % this.capacity;
    for (let i = 0; i < this.count; i++) out.push(this.items[(start + i) % this.capacity] as T);
    return out;
  }

  /** Up to `n` items, newest first. */
  newest(n: number): T[] {
    const out: T[] = [];
    const k = Math.min(n, this.count);
    for (let i = 1; i <= k; i++) out.push(this.items[(this.head - i + this.capacity) % this.capacity] as T);
    return out;
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const start = (this.head - this.count + this.capacity) % this.capacity;
    const item = this.items[start];
    this.items[start] = undefined;
    this.count--;
    return item;
  }

  /** The oldest item, or undefined when empty. */
  first(): T | undefined {
    return this.count === 0 ? undefined : this.items[(this.head - this.count + this.capacity) % this.capacity];
  }

  last(): T | undefined {
    return this.count === 0 ? undefined : this.items[(this.head - 1 + this.capacity) % this.capacity];
  }
}
