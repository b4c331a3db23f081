'use strict';
// node:util: npm util (node's own, for browsers) with what it lacks.
const util = require('polyfill:util/');

function isDeepStrictEqual(a, b) {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Date) return a.getTime() === b.getTime();
  if (a instanceof RegExp) return String(a) === String(b);
  if (a instanceof Map || a instanceof Set) {
    if (a.size !== b.size) return false;
    return [...a].every((x, i) => isDeepStrictEqual(x, [...b][i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && isDeepStrictEqual(a[k], b[k]));
}

const inspect = util.inspect;
inspect.custom ??= Symbol.for('nodejs.util.inspect.custom');

module.exports = {
  ...util,
  inspect,
  TextDecoder: globalThis.TextDecoder,
  TextEncoder: globalThis.TextEncoder,
  formatWithOptions: (options, ...args) => util.format(...args),
  isDeepStrictEqual,
  stripVTControlCharacters: (s) => String(s).replace(/\u001b\[[0-9;]*[A-Za-z]/g, ''),
  toUSVString: (s) => String(s).toWellFormed(),
  types: util.types,
};
