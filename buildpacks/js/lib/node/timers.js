'use strict';
// node:timers on StarlingMonkey's own timers.
const { setImmediate, clearImmediate } = require('./globals.js');

const delay = (ms, value) => new Promise((resolve) => setTimeout(() => resolve(value), ms));

module.exports = {
  setTimeout: (...a) => globalThis.setTimeout(...a),
  clearTimeout: (id) => globalThis.clearTimeout(id),
  setInterval: (...a) => globalThis.setInterval(...a),
  clearInterval: (id) => globalThis.clearInterval(id),
  setImmediate,
  clearImmediate,
  promises: {
    setTimeout: delay,
    setImmediate: (value) => delay(0, value),
  },
};
