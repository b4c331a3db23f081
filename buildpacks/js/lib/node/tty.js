'use strict';
// node:tty: a dyno's output is its log, never a terminal.
const EventEmitter = require('events');

class ReadStream extends EventEmitter {}
class WriteStream extends EventEmitter {}
ReadStream.prototype.isTTY = false;
WriteStream.prototype.isTTY = false;

module.exports = { isatty: () => false, ReadStream, WriteStream };
