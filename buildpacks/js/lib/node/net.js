'use strict';
// node:net: address checks, and the socket an http request says it came on.
// A dyno cannot open raw sockets or listen on its own: it serves http
// through the platform (require('http')), and fetch() goes out.
const EventEmitter = require('events');

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function isIPv4(s) {
  return typeof s === 'string' && V4.test(s);
}

function isIPv6(s) {
  if (typeof s !== 'string' || !s.includes(':')) return false;
  let addr = s.split('%')[0];
  const tail = addr.slice(addr.lastIndexOf(':') + 1);
  let groups = 8;
  if (tail.includes('.')) {
    if (!isIPv4(tail)) return false;
    addr = addr.slice(0, addr.length - tail.length) + '0:0';
  }
  const halves = addr.split('::');
  if (halves.length > 2) return false;
  const hex = /^[0-9a-fA-F]{1,4}$/;
  const parts = halves.map((h) => (h === '' ? [] : h.split(':')));
  if (parts.some((p) => p.some((g) => !hex.test(g)))) return false;
  const n = parts.reduce((sum, p) => sum + p.length, 0);
  return halves.length === 2 ? n < groups : n === groups;
}

function isIP(s) {
  return isIPv4(s) ? 4 : isIPv6(s) ? 6 : 0;
}

/** The connection an http request came on (from the router, over loopback). */
class Socket extends EventEmitter {
  constructor() {
    super();
    this.readable = true;
    this.writable = true;
    this.destroyed = false;
    this.remoteAddress = '127.0.0.1';
    this.remoteFamily = 'IPv4';
    this.remotePort = 0;
    this.localAddress = '127.0.0.1';
    this.localPort = 0;
    this.bytesRead = 0;
    this.bytesWritten = 0;
  }
  address() {
    return { address: this.localAddress, family: 'IPv4', port: this.localPort };
  }
  setTimeout(ms, cb) {
    if (cb) this.once('timeout', cb);
    return this;
  }
  setNoDelay() {
    return this;
  }
  setKeepAlive() {
    return this;
  }
  ref() {
    return this;
  }
  unref() {
    return this;
  }
  cork() {}
  uncork() {}
  write() {
    return true;
  }
  end() {
    return this;
  }
  destroy() {
    this.destroyed = true;
    return this;
  }
}

function unavailable(what) {
  return () => {
    throw new Error(
      `wdyno: net.${what} is not available in a JS dyno: it has no raw sockets. ` +
        'Serve HTTP with require("http") (or Express, Koa) and call out with fetch()',
    );
  };
}

module.exports = {
  Server: class Server extends EventEmitter {
    constructor() {
      super();
      unavailable('Server')();
    }
  },
  Socket,
  Stream: Socket,
  connect: unavailable('connect'),
  createConnection: unavailable('createConnection'),
  createServer: unavailable('createServer'),
  isIP,
  isIPv4,
  isIPv6,
};
