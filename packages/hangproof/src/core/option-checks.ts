/**
 * The option checks every layer uses (edge, deps, observe, pg): each throws at configuration time
 * with a message naming the option, what it must be, and the value received, so a typo fails at
 * startup rather than on the first request. A RangeError is a number out of range; a TypeError a
 * value of the wrong kind. Each returns the value, to check and assign in one expression.
 */

/** RangeError `<name> must be <what>, received <value>` unless `value` is a number `ok` accepts. */
export function numberWhere(name: string, value: number, ok: (v: number) => boolean, what: string): number {
  if (typeof value !== 'number' || !ok(value)) throw new RangeError(`${name} must be ${what}, received ${value}`);
  return value;
}

/** A duration: a finite number of ms above 0. */
export function positiveMs(name: string, value: number): number {
  return numberWhere(name, value, (v) => Number.isFinite(v) && v > 0, 'a positive number of ms');
}

/** A finite number, 0 or more (a delay, a reserve). */
export function nonNegative(name: string, value: number): number {
  return numberWhere(name, value, (v) => Number.isFinite(v) && v >= 0, '>= 0');
}

/** An integer of 1 or more (a count, a limit). */
export function positiveInt(name: string, value: number): number {
  return numberWhere(name, value, (v) => Number.isSafeInteger(v) && v >= 1, 'a positive integer');
}

/** An integer of 0 or more (0 usually turns the feature off). */
export function nonNegativeInt(name: string, value: number): number {
  return numberWhere(name, value, (v) => Number.isSafeInteger(v) && v >= 0, 'an integer >= 0');
}

/** TypeError unless `value` is a finite number (NaN, Infinity, a string are refused). */
export function finiteNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TypeError(`${name} must be a finite number, received ${String(value)}`);
  }
  return value;
}

/**
 * One of `allowed` (compared with ===). A value of a kind none of them has is a TypeError, one of
 * the right kind but not listed a RangeError: `tracing must be 'auto' or false, received yes`.
 */
export function oneOf<const T>(name: string, value: unknown, allowed: readonly T[]): T {
  if (allowed.includes(value as T)) return value as T;
  const list = allowed.map((a) => (typeof a === 'string' ? `'${a}'` : String(a)));
  const what = list.length <= 1 ? list.join('') : `${list.slice(0, -1).join(', ')} or ${list.at(-1)}`;
  const message = `${name} must be ${what}, received ${String(value)}`;
  throw allowed.some((a) => typeof a === typeof value) ? new RangeError(message) : new TypeError(message);
}

/** Undefined or a function: TypeError naming the kind received otherwise. */
export function optionalFunction<T>(name: string, value: T | undefined): T | undefined {
  if (value !== undefined && typeof value !== 'function') {
    throw new TypeError(`${name} must be a function, received ${typeof value}`);
  }
  return value;
}

/**
 * An optional group of numeric options that `false` turns off (`lockEvidence`, `planEvidence`):
 * false stays false; otherwise the defaults merged with `input`, each key checked against its
 * minimum. Throws TypeError for a non-object and RangeError naming `group.key` and the value.
 */
export function optionalGroup<T extends Record<string, number>>(
  group: string,
  input: Partial<T> | false | undefined,
  defaults: Readonly<T>,
  minimums: Readonly<Record<keyof T, number>>,
): T | false {
  if (input === false) return false;
  if (input !== undefined && (typeof input !== 'object' || input === null)) {
    throw new TypeError(`${group} must be an object or false, received ${String(input)}`);
  }
  const o = { ...defaults, ...input } as T;
  for (const [key, min] of Object.entries(minimums) as [string, number][]) {
    numberWhere(
      `${group}.${key}`,
      o[key] as number,
      (v) => typeof v === 'number' && Number.isFinite(v) && v >= min,
      `a number of at least ${min}`,
    );
  }
  return o;
}
