/** Throws RangeError `<name> must be <what>, received <value>` unless `value` is a number `ok` accepts. */
export function check(name: string, value: number, ok: (v: number) => boolean, what: string): void {
  if (typeof value !== 'number' || !ok(value)) throw new RangeError(`${name} must be ${what}, received ${value}`);
}

export const nonNegativeInt = (v: number): boolean => Number.isInteger(v) && v >= 0;
export const positiveInt = (v: number): boolean => Number.isInteger(v) && v > 0;
