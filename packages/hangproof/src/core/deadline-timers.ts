import { AsyncResource } from 'node:async_hooks';

/** What a deadline ends: a request or job context. */
export interface DeadlineTarget {
  onDeadline(): void;
}

/**
 * One scheduled deadline: a node of its duration's list, and the async context it was scheduled
 * in. The shared timer fires in whichever context armed it last (another request's, often); the
 * target runs in its own, so every AsyncLocalStorage store (the application's tracing context, its
 * own) reads what it read when the deadline was set. AsyncResource is Node's one public way to
 * carry all of them: on Node 20 it costs an init hook call, on Node 24 a captured frame.
 */
export class DeadlineEntry extends AsyncResource {
  prev: DeadlineEntry | undefined;
  next: DeadlineEntry | undefined;
  list: DeadlineList | undefined;
  constructor(
    readonly target: DeadlineTarget,
    /** performance.now() at which it is due. */
    readonly at: number,
  ) {
    super('HANGPROOF_DEADLINE');
  }
}

/** Entries of one duration: added in time order, so the head is always the earliest due. */
class DeadlineList {
  head: DeadlineEntry | undefined;
  tail: DeadlineEntry | undefined;

  push(entry: DeadlineEntry): void {
    entry.list = this;
    entry.prev = this.tail;
    if (this.tail === undefined) this.head = entry;
    else this.tail.next = entry;
    this.tail = entry;
  }

  unlink(entry: DeadlineEntry): void {
    if (entry.prev === undefined) this.head = entry.next;
    else entry.prev.next = entry.next;
    if (entry.next === undefined) this.tail = entry.prev;
    else entry.next.prev = entry.prev;
    entry.prev = undefined;
    entry.next = undefined;
    entry.list = undefined;
  }
}

/** Durations are grouped to this many ms, so header-chosen budgets cannot make a list each. */
const GROUP_MS = 8;
/** Longest delay Node's timers take (a larger one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Every request's deadline on one timer, the way Node's own timers keep one list per duration:
 * entries of the same (grouped) duration are due in the order they were added, so each list's
 * head is its earliest, and one timer is armed for the earliest head. Why not a setTimeout per
 * request: each is a Timeout object and, under AsyncLocalStorage on Node 20, an async resource
 * whose hooks run at creation; here a request costs one small entry and two pointer updates, and
 * the timer wakes only when a deadline is actually due. Grouping lets a deadline fire up to
 * GROUP_MS late, never early.
 */
export class DeadlineTimers {
  readonly #lists = new Map<number, DeadlineList>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #scheduled = 0;

  /** Number of deadlines waiting. */
  get size(): number {
    return this.#scheduled;
  }

  /**
   * Schedules `target.onDeadline()` in `ms` from `now` (the caller's performance.now(), when it
   * has read it already), to run in the async context of this call; cancel it with `cancel` when
   * the work ends first.
   */
  schedule(target: DeadlineTarget, ms: number, now = performance.now()): DeadlineEntry {
    const delay = Math.max(0, ms);
    const entry = new DeadlineEntry(target, now + delay);
    const group = Math.ceil(delay / GROUP_MS);
    let list = this.#lists.get(group);
    if (list === undefined) {
      list = new DeadlineList();
      this.#lists.set(group, list);
    }
    list.push(entry);
    if (this.#scheduled++ === 0) this.#timer?.ref();
    if (entry.at < this.#timerAt) this.#arm(entry.at);
    return entry;
  }

  /** Cancels a scheduled deadline; a no-op once it fired or was cancelled. */
  cancel(entry: DeadlineEntry): void {
    const list = entry.list;
    if (list === undefined) return;
    list.unlink(entry);
    this.#scheduled--;
    // The timer is left armed: when it fires it finds nothing due and re-arms for the next head,
    // so a request that ends early costs no timer call at all. With nothing left to wait for it
    // no longer holds the process open.
    if (this.#scheduled === 0) this.#timer?.unref();
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    // Ref'd while something waits, like the per-request timers were: a job whose work ignores
    // its signal still ends at its deadline.
    this.#timer = setTimeout(this.#fire, Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(at - performance.now()))));
    if (this.#scheduled === 0) this.#timer.unref();
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    const due: DeadlineEntry[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (const [group, list] of this.#lists) {
      let head = list.head;
      while (head !== undefined && head.at <= now) {
        list.unlink(head);
        this.#scheduled--;
        due.push(head);
        head = list.head;
      }
      if (head === undefined) this.#lists.delete(group);
      else if (head.at < next) next = head.at;
    }
    if (next !== Number.POSITIVE_INFINITY) this.#arm(next);
    // Targets run after the lists are consistent: one may schedule or cancel others.
    for (const entry of due) {
      try {
        entry.runInAsyncScope(entry.target.onDeadline, entry.target);
      } catch (err) {
        // One target's failure must not cost the others their deadline.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  };
}

/** The process's deadline timers (one per loaded copy of hangproof). */
export const deadlineTimers = new DeadlineTimers();
