/**
 * The one catalogue of client-facing error codes. A code, once released, never changes meaning:
 * clients switch on it. docs/errors.md has one row per code and a test keeps the two in step.
 */
export const CODES = Object.freeze({
  BAD_REQUEST: { status: 400, message: 'the request is not valid' },
  UNAUTHORIZED: { status: 401, message: 'authentication is required' },
  FORBIDDEN: { status: 403, message: 'not allowed' },
  NOT_FOUND: { status: 404, message: 'not found' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'method not allowed' },
  REQUEST_RECEIVE_TIMEOUT: { status: 408, message: 'the request was not received in time' },
  CONFLICT: { status: 409, message: 'the request conflicts with the current state' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'the request body is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'unsupported content type' },
  HEADERS_TOO_LARGE: { status: 431, message: 'the request headers are too large' },
  CLIENT_CLOSED_REQUEST: { status: 499, message: 'the client closed the request' },
  INTERNAL: { status: 500, message: 'internal error' },
  DEPENDENCY_TIMEOUT: { status: 503, message: 'a dependency did not answer in time' },
  DEPENDENCY_UNAVAILABLE: { status: 503, message: 'a dependency is unavailable' },
  OVERLOADED: { status: 503, message: 'the server is overloaded; retry later' },
  SHUTTING_DOWN: { status: 503, message: 'the server is shutting down; retry on another instance' },
  REQUEST_TIMEOUT: { status: 504, message: 'the request did not complete within its deadline' },
} as const satisfies Record<string, { status: number; message: string }>);

export type HangproofCode = keyof typeof CODES;

/** Extra fields that are safe to show a client, e.g. `{ dependency: 'postgres', phase: 'acquire' }`. */
export type ErrorDetails = Readonly<Record<string, string | number | boolean | null>>;

export interface HangproofErrorOptions extends ErrorOptions {
  /** Client-facing message; defaults to the catalogue's. Never put SQL, stacks or secrets here. */
  readonly message?: string;
  /** Client-facing extra fields, merged into the error body. */
  readonly details?: ErrorDetails;
  /** Seconds a client should wait before retrying; sent as `Retry-After`. */
  readonly retryAfterSec?: number;
}

const kBrand = Symbol.for('hangproof.error');

/** The one error type of hangproof: a stable code, its HTTP status and client-safe details. */
export class HangproofError extends Error {
  readonly code: HangproofCode;
  readonly statusCode: number;
  readonly details: ErrorDetails;
  readonly retryAfterSec: number | undefined;
  readonly [kBrand] = true;

  constructor(code: HangproofCode, options: HangproofErrorOptions = {}) {
    super(options.message ?? CODES[code].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HangproofError';
    this.code = code;
    this.statusCode = CODES[code].status;
    this.details = options.details ?? {};
    this.retryAfterSec = options.retryAfterSec;
  }
}

/** True for a HangproofError from any copy of the library (checks a brand, not `instanceof`). */
export const isHangproofError = (e: unknown): e is HangproofError =>
  typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[kBrand] === true;

/** The body every error response has: `{"error":{"code","message","requestId",...details}}`. */
export interface ErrorBody {
  readonly error: { readonly code: HangproofCode; readonly message: string; readonly requestId: string } & Record<
    string,
    unknown
  >;
}

export function errorBody(err: HangproofError, requestId: string): ErrorBody {
  return { error: { ...err.details, code: err.code, message: err.message, requestId } };
}

/** Shorthand for the common client errors. */
export const badRequest = (message: string, details?: ErrorDetails): HangproofError =>
  new HangproofError('BAD_REQUEST', details === undefined ? { message } : { message, details });
