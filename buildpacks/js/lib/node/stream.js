'use strict';
// node:stream: readable-stream (node's own streams, from npm), shaped as
// node's module is: the legacy Stream constructor carrying the classes.
const rs = require('polyfill:readable-stream/lib/ours/browser.js');

const Stream = rs.Stream;
for (const name of ['Readable', 'Writable', 'Duplex', 'Transform', 'PassThrough', 'addAbortSignal',
  'finished', 'destroy', 'pipeline', 'compose', 'promises', 'isDisturbed', 'isErrored', 'isReadable']) {
  if (rs[name] !== undefined && Stream[name] === undefined) Stream[name] = rs[name];
}
Stream.Stream = Stream;
module.exports = Stream;
