/**
 * A set of long-lived objects that enter and leave it over and over (a pooled connection's guard,
 * checked out and released on every query): each member keeps its own index in the set's array,
 * so adding and removing one are a few writes, with no hashing and, once the array has grown, no
 * allocation. Why not a Set: a Set that members keep entering and leaving fills its table with
 * deleted entries and rebuilds it again and again, and on the db benchmark such a table was what
 * V8 promoted to the old generation (see InFlightRequests). Order is not kept.
 */
export class SlottedSet<T extends object> implements Iterable<T> {
  readonly #members: T[] = [];
  /** Where each member keeps its index: a key of this set's own, so one object can be in several sets. */
  readonly #slot = Symbol('slot');

  get size(): number {
    return this.#members.length;
  }

  has(member: T): boolean {
    const at = this.#slotOf(member);
    return at >= 0 && this.#members[at] === member;
  }

  add(member: T): void {
    if (this.has(member)) return;
    (member as Record<symbol, number>)[this.#slot] = this.#members.length;
    this.#members.push(member);
  }

  delete(member: T): void {
    if (!this.has(member)) return;
    const at = this.#slotOf(member);
    const last = this.#members.pop() as T;
    if (last !== member) {
      this.#members[at] = last;
      (last as Record<symbol, number>)[this.#slot] = at;
    }
    (member as Record<symbol, number>)[this.#slot] = -1;
  }

  /**
   * Calls `visit` on each member, newest first. `visit` may delete the member it is given (the
   * last member then takes its place, and that one was visited already).
   */
  forEach(visit: (member: T) => void): void {
    for (let i = this.#members.length - 1; i >= 0; i--) {
      const member = this.#members[i];
      if (member !== undefined) visit(member);
    }
  }

  [Symbol.iterator](): Iterator<T> {
    return [...this.#members][Symbol.iterator]();
  }

  #slotOf(member: T): number {
    return (member as Record<symbol, number | undefined>)[this.#slot] ?? -1;
  }
}
