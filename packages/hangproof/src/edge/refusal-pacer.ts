import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { HangproofError } from '../errors.js';
import { writeRefusal } from './front-door.js';

/** Most refusals waiting for their pause at once; beyond it they are answered at once. */
const MAX_PAUSED = 10_000;

const kLastRefusedAt = Symbol('hangproof.last-refused-at');
type PacedSocket = Socket & { [kLastRefusedAt]?: number };

interface Paused {
  readonly dueAt: number;
  readonly res: ServerResponse;
  readonly error: HangproofError;
  readonly requestId: string;
}

/**
 * Paces the refusals of a client that keeps asking on the same connection. Under a storm, a
 * client that ignores Retry-After sends its next request the moment its 503 arrives: refusing is
 * cheap, but at thousands a second it still takes the CPU the admitted requests need, and the
 * service serves less the harder it is asked. A connection refused less than `pauseMs` ago gets
 * its next refusal `pauseMs` later (as nginx's `limit_req` delays an excess request): the answer
 * is still a fast 503 in the error shape, bounded by `pauseMs`, and each such connection costs at
 * most one refusal per pause. A first refusal, and every refusal while draining (its connection
 * closes), go out at once. Waiting refusals hold no work: a response, a timer for all of them.
 */
export class RefusalPacer {
  readonly #pauseMs: number;
  /** Paused refusals in due order: the pause is the same for all, so arrival order is due order. */
  #queue: Paused[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(pauseMs: number) {
    this.#pauseMs = pauseMs;
  }

  /** Refusals waiting for their pause now. */
  get paused(): number {
    return this.#queue.length - this.#head;
  }

  /** Answers `req` with `error` now, or after the pause when its connection was just refused. */
  refuse(req: IncomingMessage, res: ServerResponse, error: HangproofError, requestId: string, closing: boolean): void {
    const socket = req.socket as PacedSocket | null;
    const now = performance.now();
    // When this connection's last refusal was (or will be) sent.
    const last = socket?.[kLastRefusedAt];
    if (
      closing ||
      this.#pauseMs <= 0 ||
      last === undefined ||
      now - last >= this.#pauseMs ||
      this.paused >= MAX_PAUSED
    ) {
      if (socket !== null) socket[kLastRefusedAt] = now;
      writeRefusal(res, error, requestId, closing);
      return;
    }
    const dueAt = now + this.#pauseMs;
    if (socket !== null) socket[kLastRefusedAt] = dueAt;
    this.#queue.push({ dueAt, res, error, requestId });
    this.#timer ??= setTimeout(this.#answerDue, this.#pauseMs);
  }

  /** Answers every paused refusal now (at shutdown: nothing may wait behind a closing server). */
  flush(): void {
    this.#answer(Number.POSITIVE_INFINITY);
  }

  readonly #answerDue = (): void => {
    this.#timer = undefined;
    this.#answer(performance.now());
  };

  #answer(until: number): void {
    const queue = this.#queue;
    while (this.#head < queue.length) {
      const p = queue[this.#head] as Paused;
      if (p.dueAt > until) break;
      this.#head++;
      // The client may have left meanwhile: nothing to answer.
      if (!p.res.destroyed && !p.res.writableEnded) writeRefusal(p.res, p.error, p.requestId, false);
    }
    if (this.#head === queue.length) {
      this.#queue = [];
      this.#head = 0;
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
    } else {
      if (this.#head > 1024) {
        this.#queue = queue.slice(this.#head);
        this.#head = 0;
      }
      const next = this.#queue[this.#head] as Paused;
      if (this.#timer === undefined)
        this.#timer = setTimeout(this.#answerDue, Math.max(1, Math.ceil(next.dueAt - performance.now())));
    }
  }
}
