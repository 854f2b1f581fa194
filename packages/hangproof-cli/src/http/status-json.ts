/**
 * A /status.json read over HTTP. Its fields are the library's `StatusDocument` (imported as a type
 * only, so a rename there fails this package's type check), but the service may run another
 * hangproof version or not be hangproof at all: every field may be missing, and each value is
 * still checked before it is used.
 */
import type { StatusDocument } from 'hangproof';

type Untrusted<T> = T extends readonly (infer U)[]
  ? readonly Untrusted<U>[]
  : T extends object
    ? { readonly [K in keyof T]?: Untrusted<T[K]> | null }
    : T;

/** /status.json as received: StatusDocument's field names, nothing guaranteed present. */
export type StatusJson = Untrusted<StatusDocument>;

/** The parsed body as a StatusJson, or undefined when it is not a JSON object. */
export function asStatusJson(body: unknown): StatusJson | undefined {
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as StatusJson) : undefined;
}

/** `v` when it really is an array (a field of StatusJson may hold anything), else an empty list. */
export function listOf<T>(v: readonly T[] | null | undefined): readonly T[] {
  return Array.isArray(v) ? (v as readonly T[]) : [];
}
