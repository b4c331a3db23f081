'use strict';
// node:assert: the checks libraries make of their arguments.
const { isDeepStrictEqual } = require('util');

class AssertionError extends Error {
  constructor(options) {
    super(options.message);
    this.name = 'AssertionError';
    this.code = 'ERR_ASSERTION';
    this.actual = options.actual;
    this.expected = options.expected;
    this.operator = options.operator;
    this.generatedMessage = !options.userMessage;
  }
}

function fail(actual, expected, message, operator, fallback) {
  if (message instanceof Error) throw message;
  throw new AssertionError({
    message: message ?? fallback,
    userMessage: message !== undefined,
    actual,
    expected,
    operator,
  });
}

function assert(value, message) {
  if (!value) fail(value, true, message, '==', 'The expression evaluated to a falsy value');
}

Object.assign(assert, {
  AssertionError,
  ok: assert,
  fail: (message = 'Failed') => fail(undefined, undefined, message, 'fail'),
  equal: (a, b, m) => a == b || fail(a, b, m, '==', `${a} == ${b}`),
  notEqual: (a, b, m) => a != b || fail(a, b, m, '!=', `${a} != ${b}`),
  strictEqual: (a, b, m) => Object.is(a, b) || fail(a, b, m, 'strictEqual', `Expected ${a} to be ${b}`),
  notStrictEqual: (a, b, m) => !Object.is(a, b) || fail(a, b, m, 'notStrictEqual', `Expected ${a} not to be ${b}`),
  deepEqual: (a, b, m) => isDeepStrictEqual(a, b) || fail(a, b, m, 'deepEqual', 'Expected values to be deeply equal'),
  deepStrictEqual: (a, b, m) => isDeepStrictEqual(a, b) || fail(a, b, m, 'deepStrictEqual', 'Expected values to be deeply equal'),
  notDeepStrictEqual: (a, b, m) => !isDeepStrictEqual(a, b) || fail(a, b, m, 'notDeepStrictEqual', 'Expected values not to be deeply equal'),
  match: (s, re, m) => re.test(s) || fail(s, re, m, 'match', `The input did not match ${re}`),
  throws(fn, expected, message) {
    try {
      fn();
    } catch {
      return;
    }
    fail(undefined, expected, typeof expected === 'string' ? expected : message, 'throws', 'Missing expected exception.');
  },
  doesNotThrow: (fn) => fn(),
  async rejects(p, expected, message) {
    try {
      await (typeof p === 'function' ? p() : p);
    } catch {
      return;
    }
    fail(undefined, expected, message, 'rejects', 'Missing expected rejection.');
  },
  ifError: (v) => {
    if (v !== null && v !== undefined) throw v;
  },
});
assert.notDeepEqual = assert.notDeepStrictEqual;
assert.strict = assert;

module.exports = assert;
