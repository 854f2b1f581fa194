import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  finiteNumber,
  nonNegative,
  nonNegativeInt,
  numberWhere,
  oneOf,
  optionalFunction,
  positiveInt,
  positiveMs,
} from '../../src/core/option-checks.ts';

test('each check returns an accepted value and names the option and the value it refuses', () => {
  assert.equal(positiveMs('deadlineMs', 250), 250);
  assert.throws(() => positiveMs('deadlineMs', 0), {
    name: 'RangeError',
    message: 'deadlineMs must be a positive number of ms, received 0',
  });
  assert.throws(() => positiveMs('deadlineMs', Number.POSITIVE_INFINITY), RangeError);
  assert.equal(nonNegative('reserveMs', 0), 0);
  assert.throws(() => nonNegative('reserveMs', Number.NaN), {
    name: 'RangeError',
    message: 'reserveMs must be >= 0, received NaN',
  });
  assert.equal(positiveInt('maxRoutes', 1), 1);
  assert.throws(() => positiveInt('maxRoutes', 1.5), { message: 'maxRoutes must be a positive integer, received 1.5' });
  assert.equal(nonNegativeInt('maxQueued', 0), 0);
  assert.throws(() => nonNegativeInt('maxQueued', -1), { message: 'maxQueued must be an integer >= 0, received -1' });
  assert.throws(() => numberWhere('ratio', 1, (v) => v < 1, 'in (0, 1)'), {
    message: 'ratio must be in (0, 1), received 1',
  });
  assert.throws(() => numberWhere('ratio', '0.5' as unknown as number, () => true, 'a number'), RangeError);
  assert.equal(finiteNumber('max', 10), 10);
  assert.throws(() => finiteNumber('max', '10'), {
    name: 'TypeError',
    message: 'max must be a finite number, received 10',
  });
});

test('oneOf lists the accepted values; a value of the wrong kind is a TypeError, of the right kind a RangeError', () => {
  assert.equal(oneOf('tracing', false, ['auto', false]), false);
  assert.throws(() => oneOf('tracing', 'yes', ['auto', false]), {
    name: 'RangeError',
    message: "tracing must be 'auto' or false, received yes",
  });
  assert.throws(() => oneOf('statementLimits', 3, ['when-shorter', 'always']), {
    name: 'TypeError',
    message: "statementLimits must be 'when-shorter' or 'always', received 3",
  });
  assert.equal(optionalFunction('allow', undefined), undefined);
  assert.throws(() => optionalFunction('allow', 'admins'), {
    name: 'TypeError',
    message: 'allow must be a function, received string',
  });
});
