/**
 * Short strings kept for a while without keeping them on the heap: fixed-width slots of bytes.
 *
 * observe remembers the id of each of the last 256 requests (to list those a stall delayed). Kept
 * as strings, every request's id lived long enough to be promoted to the old generation (about
 * 140 bytes a request: the id is built per request), so old space grew steadily and needed
 * mark-compacts to clear. Copied into bytes, an id costs nothing the collector sees. A string
 * longer than a slot or with a character above U+00FF is kept as it is (rare: the ids hangproof
 * makes are 36 ASCII characters, and an incoming X-Request-ID is at most 128 of `[A-Za-z0-9._:-]`).
 */
export class ByteStringSlots {
  readonly #width: number;
  readonly #bytes: Buffer;
  /** Length of each slot's string; -1: empty, -2: the string is in #asIs. */
  readonly #lengths: Int16Array;
  readonly #asIs: (string | undefined)[];

  constructor(count: number, width: number) {
    this.#width = width;
    this.#bytes = Buffer.alloc(count * width);
    this.#lengths = new Int16Array(count).fill(-1);
    this.#asIs = new Array<string | undefined>(count);
  }

  set(slot: number, value: string | undefined): void {
    this.#asIs[slot] = undefined;
    if (value === undefined) {
      this.#lengths[slot] = -1;
      return;
    }
    const length = value.length;
    if (length <= this.#width) {
      const bytes = this.#bytes;
      const offset = slot * this.#width;
      let i = 0;
      for (; i < length; i++) {
        const code = value.charCodeAt(i);
        if (code > 0xff) break;
        bytes[offset + i] = code;
      }
      if (i === length) {
        this.#lengths[slot] = length;
        return;
      }
    }
    this.#lengths[slot] = -2;
    this.#asIs[slot] = value;
  }

  get(slot: number): string | undefined {
    const length = this.#lengths[slot] as number;
    if (length === -1) return undefined;
    if (length === -2) return this.#asIs[slot];
    const offset = slot * this.#width;
    return this.#bytes.toString('latin1', offset, offset + length);
  }
}
