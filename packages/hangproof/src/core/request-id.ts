import { randomUUID } from 'node:crypto';

/** 1-128 characters of `[A-Za-z0-9._:-]`: safe to echo in headers and logs. */
const VALID_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function isValidRequestId(value: unknown): value is string {
  return typeof value === 'string' && VALID_REQUEST_ID.test(value);
}

/** The caller's `X-Request-ID` when it is valid, otherwise a new UUID. */
export function resolveRequestId(incoming: string | string[] | undefined): string {
  return isValidRequestId(incoming) ? incoming : randomUUID();
}
