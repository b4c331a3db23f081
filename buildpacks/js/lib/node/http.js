'use strict';
// node:http for a wdyno JS dyno: the bridge from node's server API to the
// wasi:http handler StarlingMonkey serves.
//
// `http.createServer(handler).listen(port)` runs at the module's top level,
// at build time: it makes that server the dyno's, and the bundle's `fetch`
// listener hands each request to it as an IncomingMessage (method, url,
// headers, the body as a readable stream) and a ServerResponse whose
// headers and body become the fetch event's Response. The port is ignored:
// the dyno serves the router on the port the platform gives it. A
// response's body is sent in one piece when `end` is the first write, and
// streamed when the app writes before it ends.

const EventEmitter = require('events');
const { Readable, Stream } = require('stream');
const { Buffer } = require('buffer');
const { Socket } = require('net');

const STATUS_CODES = {
  100: "Continue",
  101: "Switching Protocols",
  102: "Processing",
  103: "Early Hints",
  200: "OK",
  201: "Created",
  202: "Accepted",
  203: "Non-Authoritative Information",
  204: "No Content",
  205: "Reset Content",
  206: "Partial Content",
  207: "Multi-Status",
  208: "Already Reported",
  226: "IM Used",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  305: "Use Proxy",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Payload Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  418: "I'm a Teapot",
  421: "Misdirected Request",
  422: "Unprocessable Entity",
  423: "Locked",
  424: "Failed Dependency",
  425: "Too Early",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  451: "Unavailable For Legal Reasons",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
  506: "Variant Also Negotiates",
  507: "Insufficient Storage",
  508: "Loop Detected",
  509: "Bandwidth Limit Exceeded",
  510: "Not Extended",
  511: "Network Authentication Required",
};

const METHODS = ['ACL', 'BIND', 'CHECKOUT', 'CONNECT', 'COPY', 'DELETE', 'GET', 'HEAD', 'LINK', 'LOCK',
  'M-SEARCH', 'MERGE', 'MKACTIVITY', 'MKCALENDAR', 'MKCOL', 'MOVE', 'NOTIFY', 'OPTIONS', 'PATCH', 'POST',
  'PROPFIND', 'PROPPATCH', 'PURGE', 'PUT', 'QUERY', 'REBIND', 'REPORT', 'SEARCH', 'SOURCE', 'SUBSCRIBE',
  'TRACE', 'UNBIND', 'UNLINK', 'UNLOCK', 'UNSUBSCRIBE'];

// Hop-by-hop headers: the router frames the connection, and wasi:http
// refuses them in a response.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding',
  'upgrade', 'te', 'trailer', 'proxy-authenticate', 'proxy-authorization', 'http2-settings', 'host']);

const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

function codedError(code, message, Kind = Error) {
  const e = new Kind(message);
  e.code = code;
  return e;
}

function validateHeaderName(name) {
  if (typeof name !== 'string' || !name || !TOKEN.test(name)) {
    throw codedError('ERR_INVALID_HTTP_TOKEN', `Header name must be a valid HTTP token ["${name}"]`, TypeError);
  }
}

function validateHeaderValue(name, value) {
  if (value === undefined) {
    throw codedError('ERR_HTTP_INVALID_HEADER_VALUE', `Invalid value "${value}" for header "${name}"`, TypeError);
  }
  if (INVALID_VALUE.test(String(value))) {
    throw codedError('ERR_INVALID_CHAR', `Invalid character in header content ["${name}"]`, TypeError);
  }
}

function bytes(chunk, encoding) {
  if (typeof chunk === 'string') return Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8');
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  throw codedError('ERR_INVALID_ARG_TYPE',
    'The "chunk" argument must be of type string or an instance of Buffer or Uint8Array', TypeError);
}

/** A request, as node's server hands it to the app. */
class IncomingMessage extends Readable {
  constructor(socket) {
    super();
    this.socket = socket;
    this.httpVersion = '1.1';
    this.httpVersionMajor = 1;
    this.httpVersionMinor = 1;
    this.method = null;
    this.url = '';
    this.headers = {};
    this.rawHeaders = [];
    this.trailers = {};
    this.rawTrailers = [];
    this.statusCode = null;
    this.statusMessage = null;
    this.complete = false;
    this.aborted = false;
    this.upgrade = false;
    this._reader = null;
  }

  get connection() {
    return this.socket;
  }

  get headersDistinct() {
    const out = Object.create(null);
    for (let i = 0; i < this.rawHeaders.length; i += 2) {
      (out[this.rawHeaders[i].toLowerCase()] ??= []).push(this.rawHeaders[i + 1]);
    }
    return out;
  }

  setTimeout(ms, cb) {
    if (cb) this.once('timeout', cb);
    return this;
  }

  _read() {
    const reader = this._reader;
    if (!reader) {
      this.complete = true;
      this.push(null);
      return;
    }
    reader.read().then(
      ({ done, value }) => {
        if (done) {
          this.complete = true;
          this.push(null);
        } else if (value.byteLength === 0) {
          this._read();
        } else {
          this.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
        }
      },
      (err) => {
        this.aborted = true;
        this.emit('aborted');
        this.destroy(err);
      },
    );
  }

  _destroy(err, cb) {
    if (this._reader && !this.complete) this._reader.cancel().catch(() => {});
    cb(err);
  }
}

/** Adds one request header as node does: set-cookie a list, cookie joined by "; ", others by ", ". */
function addHeader(headers, name, value) {
  const key = name.toLowerCase();
  if (key === 'set-cookie') {
    (headers[key] ??= []).push(value);
  } else if (key in headers) {
    headers[key] += (key === 'cookie' ? '; ' : ', ') + value;
  } else {
    headers[key] = value;
  }
}

/** A response, as node's server hands it to the app; `respond` gets its Response. */
class ServerResponse extends Stream {
  constructor(req, respond) {
    super();
    this.req = req;
    this.socket = req.socket;
    this.statusCode = 200;
    this.statusMessage = undefined;
    this.sendDate = true;
    this.chunkedEncoding = false;
    this.shouldKeepAlive = true;
    this.useChunkedEncodingByDefault = true;
    this.headersSent = false;
    this.writable = true;
    this.writableEnded = false;
    this.writableFinished = false;
    this.destroyed = false;
    this._fields = new Map();
    this._respond = respond;
    this._body = null;
    this._noBody = req.method === 'HEAD';
  }

  get connection() {
    return this.socket;
  }
  get finished() {
    return this.writableEnded;
  }
  get writableLength() {
    return 0;
  }
  get writableHighWaterMark() {
    return 16384;
  }
  get writableCorked() {
    return 0;
  }
  get writableNeedDrain() {
    return false;
  }

  _checkNotSent(what) {
    if (this.headersSent) {
      throw codedError('ERR_HTTP_HEADERS_SENT', `Cannot ${what} headers after they are sent to the client`);
    }
  }

  setHeader(name, value) {
    this._checkNotSent('set');
    validateHeaderName(name);
    validateHeaderValue(name, value);
    this._fields.set(name.toLowerCase(), [name, value]);
    return this;
  }

  appendHeader(name, value) {
    const old = this.getHeader(name);
    if (old === undefined) return this.setHeader(name, value);
    const list = [].concat(old, value);
    return this.setHeader(this._fields.get(name.toLowerCase())[0], list);
  }

  getHeader(name) {
    return this._fields.get(String(name).toLowerCase())?.[1];
  }

  getHeaders() {
    const out = Object.create(null);
    for (const [key, [, value]] of this._fields) out[key] = value;
    return out;
  }

  getHeaderNames() {
    return [...this._fields.keys()];
  }

  getRawHeaderNames() {
    return [...this._fields.values()].map(([name]) => name);
  }

  hasHeader(name) {
    return this._fields.has(String(name).toLowerCase());
  }

  removeHeader(name) {
    this._checkNotSent('remove');
    this._fields.delete(String(name).toLowerCase());
  }

  writeHead(statusCode, reason, headers) {
    this._checkNotSent('set');
    if (typeof reason !== 'string') {
      headers = reason;
      reason = undefined;
    }
    statusCode |= 0;
    if (statusCode < 100 || statusCode > 999) {
      throw codedError('ERR_HTTP_INVALID_STATUS_CODE', `Invalid status code: ${statusCode}`, RangeError);
    }
    this.statusCode = statusCode;
    if (reason) this.statusMessage = reason;
    if (Array.isArray(headers)) {
      const pairs = Array.isArray(headers[0]) ? headers : [];
      if (!pairs.length) for (let i = 0; i + 1 < headers.length; i += 2) pairs.push([headers[i], headers[i + 1]]);
      for (const [k, v] of pairs) this.appendHeader(k, v);
    } else if (headers) {
      for (const k of Object.keys(headers)) if (headers[k] !== undefined) this.setHeader(k, headers[k]);
    }
    this.headersSent = true;
    return this;
  }

  flushHeaders() {
    if (!this.headersSent) this.writeHead(this.statusCode);
    this._stream();
  }

  setTimeout(ms, cb) {
    if (cb) this.once('timeout', cb);
    return this;
  }

  write(chunk, encoding, cb) {
    if (typeof encoding === 'function') [cb, encoding] = [encoding, undefined];
    if (this.writableEnded) {
      const err = codedError('ERR_STREAM_WRITE_AFTER_END', 'write after end');
      process.nextTick(() => {
        if (cb) cb(err);
        this.emit('error', err);
      });
      return false;
    }
    this.flushHeaders();
    if (chunk != null && !this._noBody) {
      const b = bytes(chunk, encoding);
      if (b.byteLength) this._body.enqueue(b);
    }
    if (cb) process.nextTick(cb);
    return true;
  }

  end(chunk, encoding, cb) {
    if (typeof chunk === 'function') [cb, chunk] = [chunk, undefined];
    else if (typeof encoding === 'function') [cb, encoding] = [encoding, undefined];
    if (this.writableEnded) {
      if (cb) process.nextTick(cb);
      return this;
    }
    if (!this.headersSent) this.writeHead(this.statusCode);
    const b = chunk != null && !this._noBody ? bytes(chunk, encoding) : null;
    if (this._body) {
      if (b && b.byteLength) this._body.enqueue(b);
      this._body.close();
    } else {
      this._send(b && b.byteLength ? b : null, true);
    }
    this.writableEnded = true;
    this.writable = false;
    process.nextTick(() => {
      this.writableFinished = true;
      this.emit('prefinish');
      this.emit('finish');
      if (cb) cb();
      this.emit('close');
    });
    return this;
  }

  destroy(err) {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.writable = false;
    if (this._body) {
      this._body.error(err || new Error('the response was destroyed'));
    } else if (this._respond) {
      this._respond(null);
      this._respond = null;
    }
    process.nextTick(() => {
      if (err) this.emit('error', err);
      this.emit('close');
    });
    return this;
  }

  // Writes after end, or before, start a streamed body.
  _stream() {
    if (this._body || !this._respond) return;
    let controller;
    const body = new ReadableStream({
      start(c) {
        controller = c;
      },
    });
    this._body = controller;
    this._send(body, false);
  }

  _send(body, whole) {
    const headers = new Headers();
    for (const [key, [name, value]] of this._fields) {
      if (HOP_BY_HOP.has(key)) continue;
      if (key === 'content-length' && this._noBody) continue;
      for (const v of Array.isArray(value) ? value : [value]) headers.append(name, String(v));
    }
    if (this.sendDate && !headers.has('date')) headers.set('date', new Date().toUTCString());
    const status = this.statusCode;
    const bodyless = this._noBody || status === 204 || status === 304 || status < 200;
    if (whole && !bodyless && !headers.has('content-length')) {
      headers.set('content-length', String(body ? body.byteLength : 0));
    }
    const respond = this._respond;
    this._respond = null;
    respond(new Response(bodyless ? null : body, {
      status,
      statusText: this.statusMessage || STATUS_CODES[status] || '',
      headers,
    }));
  }
}

// The server that listen() made the dyno's, and whether the fetch listener is added.
let serving = null;
let listening = false;

/** The dyno's http server: it listens on nothing, the fetch listener feeds it. */
class Server extends EventEmitter {
  constructor(options, requestListener) {
    super();
    if (typeof options === 'function') requestListener = options;
    if (requestListener) this.on('request', requestListener);
    this.listening = false;
    this.timeout = 0;
    this.keepAliveTimeout = 5000;
    this.headersTimeout = 60000;
    this.requestTimeout = 300000;
    this.maxHeadersCount = null;
    this.maxRequestsPerSocket = 0;
    this._port = 0;
  }

  listen(...args) {
    const cb = typeof args[args.length - 1] === 'function' ? args.pop() : null;
    const first = args[0];
    const port = first && typeof first === 'object' ? first.port : first;
    if (serving && serving !== this) {
      throw new Error('wdyno: a web dyno serves one http server, and another one already listens: call listen() once');
    }
    serving = this;
    this._port = Number(port) || 0;
    this.listening = true;
    if (cb) this.once('listening', cb);
    if (!listening) {
      listening = true;
      addEventListener('fetch', (event) => event.respondWith(serve(event.request)));
    }
    // As node does, soon after: at build time, so once (every request
    // starts from the snapshot); what the callback logs is in the build's
    // output.
    process.nextTick(() => this.emit('listening'));
    return this;
  }

  address() {
    return this.listening ? { address: '0.0.0.0', family: 'IPv4', port: this._port } : null;
  }

  close(cb) {
    this.listening = false;
    if (serving === this) serving = null;
    process.nextTick(() => {
      this.emit('close');
      if (cb) cb();
    });
    return this;
  }

  closeAllConnections() {}
  closeIdleConnections() {}
  setTimeout(ms, cb) {
    this.timeout = ms;
    if (cb) this.on('timeout', cb);
    return this;
  }
  getConnections(cb) {
    process.nextTick(() => cb(null, 0));
    return this;
  }
  ref() {
    return this;
  }
  unref() {
    return this;
  }
}

/** One fetch event's Request, through the dyno's server, to a Response. */
function serve(request) {
  const server = serving;
  if (!server) return new Response('the app closed its http server\n', { status: 503 });
  return new Promise((resolve) => {
    const url = new URL(request.url);
    const socket = new Socket();
    socket.localPort = server._port;
    const req = new IncomingMessage(socket);
    req.method = request.method;
    req.url = url.pathname + url.search;
    for (const [name, value] of request.headers) {
      addHeader(req.headers, name, value);
      req.rawHeaders.push(name, value);
    }
    if (!('host' in req.headers)) {
      // wasi:http carries the host as the request's authority, not a header.
      req.headers.host = url.host;
      req.rawHeaders.unshift('host', url.host);
    }
    if (request.body && !('content-length' in req.headers) && !['GET', 'HEAD'].includes(req.method)) {
      // A body of unknown length reached node as a chunked one.
      req.headers['transfer-encoding'] = 'chunked';
      req.rawHeaders.push('transfer-encoding', 'chunked');
    }
    req._reader = request.body ? request.body.getReader() : null;
    const res = new ServerResponse(req, (response) => resolve(response ?? new Response(null, { status: 502 })));
    try {
      server.emit('request', req, res);
    } catch (err) {
      console.error(err && err.stack ? err.stack : String(err));
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end('Internal Server Error');
      } else {
        res.destroy(err);
      }
    }
  });
}

function createServer(options, requestListener) {
  return new Server(options, requestListener);
}

/** Outgoing requests: not bridged; fetch() is StarlingMonkey's own. */
class Agent extends EventEmitter {
  constructor(options) {
    super();
    this.options = { ...options };
    this.maxSockets = Infinity;
    this.sockets = {};
    this.requests = {};
    this.freeSockets = {};
  }
  destroy() {}
}

function request() {
  throw new Error('wdyno: http.request and http.get are not available in a JS dyno; use fetch() for outgoing requests');
}

module.exports = {
  Agent,
  ClientRequest: class ClientRequest extends Stream {},
  IncomingMessage,
  METHODS,
  OutgoingMessage: ServerResponse,
  STATUS_CODES,
  Server,
  ServerResponse,
  createServer,
  get: request,
  globalAgent: new Agent(),
  maxHeaderSize: 16384,
  request,
  validateHeaderName,
  validateHeaderValue,
};
