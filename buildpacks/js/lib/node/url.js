'use strict';
// node:url: the legacy parse/format/resolve (npm url) and the WHATWG URL
// (StarlingMonkey's), with the path conversions.
const legacy = require('polyfill:url/');

function fileURLToPath(u) {
  const url = typeof u === 'string' ? new URL(u) : u;
  if (url.protocol !== 'file:') throw new TypeError('The URL must be of scheme file');
  return decodeURIComponent(url.pathname);
}

function pathToFileURL(path) {
  return new URL(`file://${encodeURI(path).replace(/[?#]/g, encodeURIComponent)}`);
}

module.exports = {
  ...legacy,
  URL: globalThis.URL,
  URLSearchParams: globalThis.URLSearchParams,
  domainToASCII: (d) => new URL(`http://${d}`).hostname,
  domainToUnicode: (d) => d,
  fileURLToPath,
  pathToFileURL,
};
