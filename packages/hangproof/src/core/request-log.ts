import { type Level, type Logger, pino } from 'pino';
import { REQUEST_LOG_MESSAGES } from '../log-events.js';
import {
  type ByteSink,
  byteSinkOf,
  jsonStringBound,
  putAscii,
  putBytes,
  putInt,
  putJsonString,
  putTenths,
  putUtf8,
} from './line-bytes.js';
import type { RequestContext } from './request-context.js';

/** Durations above which a request's line is logged at warn and at error, in ms. */
export interface LogThresholds {
  readonly slowWarnMs: number;
  readonly slowErrorMs: number;
}

/** info normally, warn when slow, error when very slow or a server-side failure. */
export function levelFor(statusCode: number, durationMs: number, t: LogThresholds): Level {
  if (statusCode >= 500 || durationMs > t.slowErrorMs) return 'error';
  if (durationMs > t.slowWarnMs) return 'warn';
  return 'info';
}

const round = (ms: number): number => Math.round(ms * 10) / 10;
/** Bytes of a byte line's fixed parts: field names and numbers (see `#writeBytes`). */
const LINE_BYTES_FIXED = 512;
/** Most entries each cache of repeated pieces keeps: route patterns, and level prefixes and bindings. */
const MAX_CACHED_PIECES = 10_000;

/** The `msg` of a request's line: the report and the CLI match on these. */
function messageFor(errorCode: string | undefined): string {
  if (errorCode === 'REQUEST_TIMEOUT') return REQUEST_LOG_MESSAGES.requestTimedOut;
  if (errorCode === 'CLIENT_CLOSED_REQUEST') return REQUEST_LOG_MESSAGES.clientClosedRequest;
  return errorCode === undefined ? REQUEST_LOG_MESSAGES.requestCompleted : REQUEST_LOG_MESSAGES.requestFailed;
}

/** Characters that may go between JSON quotes as they are: printable ASCII without `"` and `\`. */
const JSON_PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const jsonString = (s: string): string => (JSON_PLAIN.test(s) ? `"${s}"` : JSON.stringify(s));
/** A route pattern as the line writes it: JSON for the string line, its UTF-8 for the byte line. */
interface RoutePiece {
  readonly json: string;
  readonly bytes: Uint8Array;
}
const NUMERIC_LEVELS: Readonly<Record<string, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50 };

/** The logger internals a direct line uses; see `directLineFor`. */
interface PinoInternals {
  readonly lsCache: Record<number, string>;
  readonly time: () => string;
  readonly chindings: () => string;
  readonly end: string;
  readonly messageKey: string;
  readonly stream: { write(line: string): unknown };
  /** Fields the logger has a serializer for (Fastify's logger: req, res, err); see `serializesAny`. */
  readonly serialized: ReadonlySet<string>;
  /** The stream, when it takes lines as bytes written in place (bufferedLogger's). */
  readonly bytes: ByteSink | undefined;
  /** True when the logger's timestamp is pino's default (epoch ms), which the byte line writes itself. */
  readonly epochTime: boolean;
}

const sym = pino.symbols;
/** Set by pino's `msgPrefix` option; absent from its typings. */
const msgPrefixSym = (pino.symbols as unknown as Record<string, symbol | undefined>).msgPrefixSym;
type Internal = Record<symbol, unknown>;

/**
 * The internals of `logger` when its lines can be written directly, byte for byte as pino would
 * write them, or undefined when pino must build them: a log formatter, mixin, message prefix,
 * nested key, redaction, a logMethod or streamWrite hook, or a multistream that wants metadata.
 * Each of those changes what a line contains, and a direct line must never differ from what the
 * application configured. Serializers (a Fastify logger has req, res and err) touch only the
 * fields they name: a line with such a field goes through pino (see `serializesAny`).
 */
function directLineFor(logger: Logger): PinoInternals | undefined {
  const l = logger as unknown as Internal;
  const formatters = l[sym.formattersSym] as { log?: unknown } | undefined;
  const hooks = l[sym.hooksSym] as { logMethod?: unknown; streamWrite?: unknown } | undefined;
  const stringifiers = l[sym.stringifiersSym] as Internal | undefined;
  const serializers = l[sym.serializersSym] as Record<string, unknown> | undefined;
  const stream = l[sym.streamSym] as ({ write?: unknown } & Internal) | undefined;
  const lsCache = l[sym.lsCacheSym] as Record<number, string> | undefined;
  const time = l[sym.timeSym] as (() => string) | undefined;
  const plain =
    formatters?.log === undefined &&
    hooks?.logMethod === undefined &&
    hooks?.streamWrite === undefined &&
    l[sym.mixinSym] === undefined &&
    (msgPrefixSym === undefined || !l[msgPrefixSym]) &&
    !l[sym.nestedKeySym] &&
    stringifiers !== undefined &&
    Object.keys(stringifiers).length === 0 &&
    stringifiers[sym.wildcardFirstSym] === undefined &&
    typeof stream?.write === 'function' &&
    stream[sym.needsMetadataGsym] !== true &&
    lsCache !== undefined &&
    typeof time === 'function' &&
    typeof l[sym.endSym] === 'string' &&
    typeof l[sym.messageKeySym] === 'string';
  // A serializer of one of the line's own fields changes that field: pino writes every line then.
  const ownFields = ['request_id', 'method', 'route', 'path', 'status', 'duration_ms', 'deadline_ms', 'user_id'];
  if (!plain || ownFields.some((f) => serializers?.[f] !== undefined)) return undefined;
  return {
    lsCache,
    time: () => time.call(logger),
    // Read at each line: a child's bindings can change (setBindings).
    chindings: () => l[sym.chindingsSym] as string,
    end: l[sym.endSym] as string,
    messageKey: l[sym.messageKeySym] as string,
    stream: stream as unknown as { write(line: string): unknown },
    serialized: new Set(Object.keys(serializers ?? {})),
    bytes: byteSinkOf(stream),
    epochTime: time === pino.stdTimeFunctions.epochTime,
  };
}

/** True when one of `fields` has a serializer of the logger: pino must write that line. */
function serializesAny(p: PinoInternals, fields: Readonly<Record<string, unknown>>): boolean {
  if (p.serialized.size === 0) return false;
  for (const key in fields) if (p.serialized.has(key)) return true;
  return false;
}

/**
 * Writes the one structured line a request gets. A healthy request's line holds scalar fields
 * only (identity, status, duration, deadline, per-kind totals `db_count`/`db_ms`/`acquire_ms`/
 * `external_count`/`external_ms`) and, for a plain pino logger, is concatenated straight to its
 * stream: no object, no span list, no SQL. A slow or failed request's line (warn or error) adds the
 * span list with each query's fingerprint, where the step was when it failed, and the error; it
 * goes through pino as an object. Fields are documented in docs/logging.md.
 */
export class RequestLog {
  readonly #logger: Logger;
  readonly #direct: PinoInternals | undefined;
  readonly #thresholds: LogThresholds;
  /** Route patterns as JSON and its UTF-8, which repeat on every line (few: one per route). */
  readonly #routes = new Map<string, RoutePiece>();
  /** UTF-8 of the pieces every byte line repeats (see `#encoded`). */
  readonly #pieces = new Map<string, Uint8Array>();
  /** The byte line's end: the message and pino's line end. */
  readonly #tail: Uint8Array;

  constructor(logger: Logger, thresholds: LogThresholds) {
    this.#logger = logger;
    this.#thresholds = thresholds;
    this.#direct = directLineFor(logger);
    this.#tail = Buffer.from(
      this.#direct === undefined
        ? ''
        : `,"${this.#direct.messageKey}":"${REQUEST_LOG_MESSAGES.requestCompleted}"${this.#direct.end}`,
    );
  }

  get logger(): Logger {
    return this.#logger;
  }

  /** Writes `ctx`'s line; `quiet` lowers a healthy line to debug (health probes). */
  write(ctx: RequestContext, quiet: boolean): void {
    let level = levelFor(ctx.statusCode, ctx.durationMs, this.#thresholds);
    if (quiet && level === 'info') level = 'debug';
    if (!this.#logger.isLevelEnabled(level)) return;
    if (level === 'info' || level === 'debug') {
      const direct = this.#direct;
      if (ctx.errorCode === undefined && direct !== undefined && !(ctx.hasFields && serializesAny(direct, ctx.fields)))
        this.#writeDirect(ctx, level, direct);
      else this.#logger[level](this.#scalars(ctx), messageFor(ctx.errorCode));
      return;
    }
    this.#writeDetailed(ctx, level);
  }

  #writeDirect(ctx: RequestContext, level: Level, p: PinoInternals): void {
    if (p.bytes !== undefined && !ctx.hasFields && this.#writeBytes(ctx, level, p, p.bytes)) return;
    let line = (p.lsCache[NUMERIC_LEVELS[level] as number] as string) + p.time() + p.chindings();
    if (ctx.hasFields) {
      for (const [key, value] of Object.entries(ctx.fields)) {
        const json = JSON.stringify(value);
        if (json !== undefined) line += `,${jsonString(key)}:${json}`;
      }
    }
    line +=
      `,"request_id":${jsonString(ctx.requestId)},"method":${jsonString(ctx.method)}` +
      `,"route":${this.#route(ctx.name).json},"path":${jsonString(ctx.path)},"status":${ctx.statusCode}` +
      `,"duration_ms":${round(ctx.durationMs)},"deadline_ms":${ctx.budgetMs}`;
    if (ctx.dbCount > 0)
      line += `,"db_count":${ctx.dbCount},"db_ms":${round(ctx.dbMs)},"acquire_ms":${round(ctx.acquireMs)}`;
    if (ctx.externalCount > 0) line += `,"external_count":${ctx.externalCount},"external_ms":${round(ctx.externalMs)}`;
    if (ctx.userId !== undefined) line += `,"user_id":${jsonString(ctx.userId)}`;
    line += `,"${p.messageKey}":"${REQUEST_LOG_MESSAGES.requestCompleted}"${p.end}`;
    p.stream.write(line);
  }

  /**
   * The same line as `#writeDirect`'s, byte for byte, written in place into the sink's buffer (see
   * line-bytes.ts); false when it does not fit there and must go as a string.
   */
  #writeBytes(ctx: RequestContext, level: Level, p: PinoInternals, sink: ByteSink): boolean {
    const prefix = this.#encoded(p.lsCache[NUMERIC_LEVELS[level] as number] as string);
    const time = p.epochTime ? undefined : p.time();
    const chindings = this.#encoded(p.chindings());
    const route = this.#route(ctx.name).bytes;
    const tail = this.#tail;
    const bound =
      LINE_BYTES_FIXED +
      prefix.length +
      chindings.length +
      route.length +
      tail.length +
      (time === undefined ? 0 : 3 * time.length) +
      jsonStringBound(ctx.requestId) +
      jsonStringBound(ctx.method) +
      jsonStringBound(ctx.path) +
      (ctx.userId === undefined ? 0 : jsonStringBound(ctx.userId));
    const buf = sink.reserve(bound);
    if (buf === undefined) return false;
    let o = putBytes(buf, sink.offset, prefix);
    if (time === undefined) o = putInt(buf, putAscii(buf, o, ',"time":'), Date.now());
    else o = putUtf8(buf, o, time);
    o = putBytes(buf, o, chindings);
    o = putJsonString(buf, putAscii(buf, o, ',"request_id":'), ctx.requestId);
    o = putJsonString(buf, putAscii(buf, o, ',"method":'), ctx.method);
    o = putBytes(buf, putAscii(buf, o, ',"route":'), route);
    o = putJsonString(buf, putAscii(buf, o, ',"path":'), ctx.path);
    o = putInt(buf, putAscii(buf, o, ',"status":'), ctx.statusCode);
    o = putTenths(buf, putAscii(buf, o, ',"duration_ms":'), ctx.durationMs);
    o = putInt(buf, putAscii(buf, o, ',"deadline_ms":'), ctx.budgetMs);
    if (ctx.dbCount > 0) {
      o = putInt(buf, putAscii(buf, o, ',"db_count":'), ctx.dbCount);
      o = putTenths(buf, putAscii(buf, o, ',"db_ms":'), ctx.dbMs);
      o = putTenths(buf, putAscii(buf, o, ',"acquire_ms":'), ctx.acquireMs);
    }
    if (ctx.externalCount > 0) {
      o = putInt(buf, putAscii(buf, o, ',"external_count":'), ctx.externalCount);
      o = putTenths(buf, putAscii(buf, o, ',"external_ms":'), ctx.externalMs);
    }
    if (ctx.userId !== undefined) o = putJsonString(buf, putAscii(buf, o, ',"user_id":'), ctx.userId);
    sink.commit(putBytes(buf, o, tail));
    return true;
  }

  /**
   * The UTF-8 bytes of a piece that repeats on every line (the level's prefix, the bindings),
   * encoded once: the same string object comes back line after line.
   */
  #encoded(piece: string): Uint8Array {
    let bytes = this.#pieces.get(piece);
    if (bytes === undefined) {
      bytes = Buffer.from(piece);
      if (this.#pieces.size < MAX_CACHED_PIECES) this.#pieces.set(piece, bytes);
    }
    return bytes;
  }

  #route(route: string): RoutePiece {
    let piece = this.#routes.get(route);
    if (piece === undefined) {
      const json = jsonString(route);
      piece = { json, bytes: Buffer.from(json) };
      if (this.#routes.size < MAX_CACHED_PIECES) this.#routes.set(route, piece);
    }
    return piece;
  }

  /** The healthy line's fields as an object, for a logger whose lines pino must build. */
  #scalars(ctx: RequestContext): Record<string, unknown> {
    const line: Record<string, unknown> = ctx.hasFields ? { ...ctx.fields } : {};
    line.request_id = ctx.requestId;
    line.method = ctx.method;
    line.route = ctx.name;
    line.path = ctx.path;
    line.status = ctx.statusCode;
    line.duration_ms = round(ctx.durationMs);
    line.deadline_ms = ctx.budgetMs;
    if (ctx.dbCount > 0) {
      line.db_count = ctx.dbCount;
      line.db_ms = round(ctx.dbMs);
      line.acquire_ms = round(ctx.acquireMs);
    }
    if (ctx.externalCount > 0) {
      line.external_count = ctx.externalCount;
      line.external_ms = round(ctx.externalMs);
    }
    if (ctx.userId !== undefined) line.user_id = ctx.userId;
    if (ctx.errorCode !== undefined) this.#failure(ctx, line);
    return line;
  }

  /**
   * A slow or failed request: the scalar fields plus start and end times, every span (queries
   * with their fingerprint) and, on a failure, the last completed step and the step(s) in flight.
   */
  #writeDetailed(ctx: RequestContext, level: Level): void {
    const line = this.#scalars(ctx);
    line.start_ts = new Date(ctx.startedAtEpochMs).toISOString();
    line.end_ts = new Date(ctx.startedAtEpochMs + ctx.durationMs).toISOString();
    line.spans = ctx.spans.map((s) =>
      s.attrs === undefined
        ? { name: s.name, kind: s.kind, start_ms: round(s.startMs), dur_ms: round(s.durationMs) }
        : { name: s.name, kind: s.kind, start_ms: round(s.startMs), dur_ms: round(s.durationMs), ...s.attrs },
    );
    if (ctx.droppedSpans > 0) line.dropped_spans = ctx.droppedSpans;
    if (ctx.err !== undefined && ctx.statusCode >= 500 && ctx.errorCode === 'INTERNAL') line.err = ctx.err;
    this.#logger[level](line, messageFor(ctx.errorCode));
  }

  /** Where a failed request was: the answer to "where did it stall?". */
  #failure(ctx: RequestContext, line: Record<string, unknown>): void {
    line.error_code = ctx.errorCode;
    line.last_completed_step = ctx.lastCompletedStep ?? null;
    // Steps unwind as the abort propagates; what was running at the abort is the answer.
    const inFlight = ctx.stepsInFlightAtAbort.length > 0 ? ctx.stepsInFlightAtAbort : ctx.stepsInFlight;
    line.step_in_flight = inFlight.at(-1) ?? null;
    if (inFlight.length > 1) line.steps_in_flight = [...inFlight];
  }
}
