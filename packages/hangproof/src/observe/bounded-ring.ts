/** The last `capacity` items pushed, oldest dropped first: memory stays fixed whatever the traffic. */
export class BoundedRing<T> {
  readonly #items: (T | undefined)[];
  #next = 0;
  #size = 0;

  constructor(capacity: number) {
    if (!(Number.isInteger(capacity) && capacity > 0)) {
      throw new RangeError(`capacity must be a positive integer, received ${capacity}`);
    }
    this.#items = new Array<T | undefined>(capacity);
  }

  push(item: T): void {
    this.#items[this.#next] = item;
    this.#next = (this.#next + 1) % this.#items.length;
    if (this.#size < this.#items.length) this.#size++;
  }

  /** Newest first. */
  toArray(): T[] {
    const out: T[] = [];
    const n = this.#items.length;
    for (let i = 1; i <= this.#size; i++) out.push(this.#items[(this.#next - i + n) % n] as T);
    return out;
  }

  get size(): number {
    return this.#size;
  }
}
