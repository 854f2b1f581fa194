import { type Dispatcher, Pool } from 'undici';
import { currentContext } from '../core/index.js';
import { detectOtelApi, type OtelApiModule } from '../core/otel-api.js';
import type { AttemptInfo, Dependency } from './dependency.js';
import { HttpStatusFailure, ResponseTooLargeError } from './failure.js';
import type { ResolvedHttpOptions } from './options.js';

/** Header carrying the time the callee has, in whole ms; the hangproof edge honours it. */
export const TIMEOUT_HEADER = 'x-request-timeout-ms';
/** Header carrying the caller's request id, so logs on both sides join up. */
export const REQUEST_ID_HEADER = 'x-request-id';

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

/** Response headers as undici gives them (lower-case names). */
export type IncomingHttpHeaders = Dispatcher.ResponseData['headers'];

export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'DELETE' | 'OPTIONS' | 'POST' | 'PATCH';

/** One outbound HTTP request. */
export interface HttpRequestOptions {
  readonly method?: HttpMethod;
  /** Appended to the dependency's base path, e.g. `/quotes/AAPL?x=1`. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Request body; an object is sent as JSON. */
  readonly body?: string | Uint8Array | object;
  /**
   * Safe to repeat. GET, HEAD, PUT, DELETE and OPTIONS are idempotent by definition; set it on a
   * POST/PATCH only when the callee deduplicates (e.g. an idempotency key). @default by method
   */
  readonly idempotent?: boolean;
}

export type HttpCallOptions = Omit<HttpRequestOptions, 'method' | 'path' | 'body'>;

/**
 * A fully read response. The body is read inside the attempt, so the call's timeout covers it
 * and nothing is left streaming after the call returns. 5xx answers never get here: they are
 * failures (retried when retryable, then DEPENDENCY_UNAVAILABLE).
 */
export class HttpResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;

  constructor(status: number, headers: IncomingHttpHeaders, body: Buffer) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  text(): string {
    return this.body.toString('utf8');
  }

  /** The body parsed as JSON; throws a SyntaxError when it is not JSON. */
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }
}

/**
 * An HTTP dependency: undici Pool with every timeout set from the budget (undici waits 300 s for
 * headers and between body chunks by default), calls run through the dependency's policies.
 */
export class HttpDependency {
  readonly #dependency: Dependency;
  readonly #options: ResolvedHttpOptions;
  readonly #pool: Pool;
  /** Set once a registered OpenTelemetry tracer provider is found: calls then carry `traceparent`. */
  #otel: OtelApiModule | undefined;

  constructor(dependency: Dependency, options: ResolvedHttpOptions) {
    this.#dependency = dependency;
    this.#options = options;
    // Checked once, at construction: without a provider no OpenTelemetry code runs per call.
    void detectOtelApi().then((api) => {
      this.#otel = api;
    });
    this.#pool = new Pool(options.origin, {
      // One more connection than the bulkhead admits, for the health probe.
      connections: options.bulkhead.maxConcurrent + 1,
      connect: { timeout: options.connectTimeoutMs },
      // Per-request values below always win; these are backstops that can never be 300 s.
      headersTimeout: options.attemptTimeoutMs,
      bodyTimeout: options.attemptTimeoutMs,
      keepAliveTimeout: options.keepAliveTimeoutMs,
      keepAliveMaxTimeout: options.keepAliveTimeoutMs,
    });
  }

  get name(): string {
    return this.#dependency.name;
  }

  /** The policies and status of this dependency. */
  get dependency(): Dependency {
    return this.#dependency;
  }

  get(path: string, options: HttpCallOptions = {}): Promise<HttpResponse> {
    return this.request({ ...options, method: 'GET', path });
  }

  head(path: string, options: HttpCallOptions = {}): Promise<HttpResponse> {
    return this.request({ ...options, method: 'HEAD', path });
  }

  delete(path: string, options: HttpCallOptions = {}): Promise<HttpResponse> {
    return this.request({ ...options, method: 'DELETE', path });
  }

  put(path: string, body: HttpRequestOptions['body'], options: HttpCallOptions = {}): Promise<HttpResponse> {
    return this.request({ ...options, method: 'PUT', path, ...(body === undefined ? {} : { body }) });
  }

  /** Never retried unless `options.idempotent` says the callee deduplicates. */
  post(path: string, body: HttpRequestOptions['body'], options: HttpCallOptions = {}): Promise<HttpResponse> {
    return this.request({ ...options, method: 'POST', path, ...(body === undefined ? {} : { body }) });
  }

  request(request: HttpRequestOptions): Promise<HttpResponse> {
    const method = request.method ?? 'GET';
    const idempotent = request.idempotent ?? IDEMPOTENT_METHODS.has(method);
    const { body, contentType } = encodeBody(request.body);
    const path = this.#options.basePath + request.path;
    const requestId = currentContext()?.requestId;
    return this.#dependency.call(
      (signal, attempt) => this.#attempt(method, path, request.headers, body, contentType, requestId, signal, attempt),
      { idempotent },
    );
  }

  /** GETs the health path with the probe's own short timeout; 2xx/3xx is up. */
  async probe(path: string, signal: AbortSignal, timeoutMs: number): Promise<void> {
    const res = await this.#pool.request({
      path: this.#options.basePath + path,
      method: 'GET',
      headers: { ...this.#options.headers, [TIMEOUT_HEADER]: String(Math.max(1, Math.floor(timeoutMs))) },
      signal,
      headersTimeout: Math.ceil(timeoutMs),
      bodyTimeout: Math.ceil(timeoutMs),
    });
    await res.body.dump({ limit: 64 * 1024 }).catch(() => {});
    if (res.statusCode >= 400) throw new HttpStatusFailure(res.statusCode);
  }

  async #attempt(
    method: HttpMethod,
    path: string,
    extraHeaders: Readonly<Record<string, string>> | undefined,
    body: string | Uint8Array | undefined,
    contentType: string | undefined,
    requestId: string | undefined,
    signal: AbortSignal,
    attempt: AttemptInfo,
  ): Promise<HttpResponse> {
    const headers: Record<string, string> = { ...this.#options.headers, ...extraHeaders };
    if (contentType !== undefined && !hasHeader(headers, 'content-type')) headers['content-type'] = contentType;
    // The callee may take at most what this attempt has left; it can give up in time too.
    headers[TIMEOUT_HEADER] = String(Math.max(1, Math.floor(attempt.budgetMs)));
    if (requestId !== undefined) headers[REQUEST_ID_HEADER] = requestId;
    // The active trace continues in the callee (`traceparent`, and whatever else the
    // application's propagator writes).
    const otel = this.#otel;
    if (otel !== undefined) otel.propagation.inject(otel.context.active(), headers);
    const timeoutMs = Math.max(1, Math.ceil(attempt.budgetMs));
    const res = await this.#pool.request({
      path,
      method,
      headers,
      ...(body === undefined ? {} : { body }),
      signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    if (res.statusCode >= 500) {
      // Read a little so the socket can be reused; dump() destroys it past the limit.
      await res.body.dump({ limit: 64 * 1024 }).catch(() => {});
      throw new HttpStatusFailure(res.statusCode);
    }
    const buffer = await readBounded(res.body, this.#options.maxResponseBytes);
    return new HttpResponse(res.statusCode, res.headers, buffer);
  }

  /** Closes idle sockets and waits up to `graceMs` for in-flight requests, then destroys the rest. */
  async close(graceMs = 1000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), graceMs);
      timer.unref();
    });
    const result = await Promise.race([this.#pool.close().then(() => 'closed' as const), timedOut]);
    clearTimeout(timer);
    if (result === 'timeout') await this.#pool.destroy();
  }
}

function hasHeader(headers: Record<string, string>, name: string): boolean {
  return Object.keys(headers).some((k) => k.toLowerCase() === name);
}

function encodeBody(body: HttpRequestOptions['body']): {
  body: string | Uint8Array | undefined;
  contentType: string | undefined;
} {
  if (body === undefined) return { body: undefined, contentType: undefined };
  if (typeof body === 'string') return { body, contentType: 'text/plain; charset=utf-8' };
  if (body instanceof Uint8Array) return { body, contentType: 'application/octet-stream' };
  return { body: JSON.stringify(body), contentType: 'application/json' };
}

async function readBounded(stream: AsyncIterable<Buffer>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += chunk.length;
    if (size > limit) {
      (stream as unknown as { destroy?: () => void }).destroy?.();
      throw new ResponseTooLargeError(limit);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}
