import { type HangproofCode, HangproofError, isHangproofError } from '../errors.js';

/** Fastify and Node error codes with a precise client meaning. */
const FASTIFY_CODES: Readonly<Record<string, HangproofCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_NOT_FOUND: 'NOT_FOUND',
  FST_ERR_HANDLER_TIMEOUT: 'REQUEST_TIMEOUT',
};

const STATUS_CODES: Readonly<Record<number, HangproofCode>> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  408: 'REQUEST_RECEIVE_TIMEOUT',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  431: 'HEADERS_TOO_LARGE',
};

interface ErrorLike {
  readonly code?: unknown;
  readonly statusCode?: unknown;
  readonly status?: unknown;
  readonly expose?: unknown;
  readonly getResponse?: unknown;
  readonly validation?: unknown;
  readonly message?: unknown;
  readonly name?: unknown;
}

/**
 * Turns anything a handler or Fastify throws into a HangproofError. Client errors keep a safe
 * meaning (400, 404, 413...); everything else becomes INTERNAL with a generic message, because an
 * unknown error's message may hold SQL, paths or secrets. When the request's own signal aborted
 * (deadline, client gone) and the handler surfaced that as some AbortError, the abort reason wins.
 */
export function toHangproofError(err: unknown, abortReason?: HangproofError): HangproofError {
  if (isHangproofError(err)) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as ErrorLike;
  if (abortReason !== undefined) return abortReason;
  if (e.validation !== undefined && typeof e.message === 'string') {
    // Fastify's schema validation messages name the field and the rule, never a value.
    return new HangproofError('BAD_REQUEST', { message: e.message, cause: err });
  }
  const byCode = typeof e.code === 'string' ? FASTIFY_CODES[e.code] : undefined;
  if (byCode !== undefined) return new HangproofError(byCode, { cause: err });
  const status = typeof e.statusCode === 'number' ? e.statusCode : frameworkStatus(e);
  const byStatus = status >= 400 && status < 500 ? (STATUS_CODES[status] ?? 'BAD_REQUEST') : undefined;
  return new HangproofError(byStatus ?? 'INTERNAL', { cause: err });
}

/**
 * The status of a framework's own HTTP exception, which names it `status`: Hono's HTTPException
 * and NestJS' HttpException (both with `getResponse()`), http-errors (`expose`). Only for those:
 * other errors carry `status` too (an HTTP client's error for an upstream's answer), and an
 * upstream's 404 is not the caller's.
 */
function frameworkStatus(e: ErrorLike): number {
  const fromFramework = typeof e.getResponse === 'function' || typeof e.expose === 'boolean';
  return fromFramework && typeof e.status === 'number' ? e.status : 500;
}
