// V8's stack trace API on SpiderMonkey: Error.captureStackTrace calling
// Error.prepareStackTrace with CallSite objects. depd (Express's, Koa's
// deprecation notices) reads its caller's file this way, at load time.
// SpiderMonkey's stacks are strings of "function@file:line:column" lines.

class CallSite {
  constructor(fn, file, line, column) {
    this._fn = fn;
    this._file = file;
    this._line = line;
    this._column = column;
  }
  getFileName() {
    return this._file;
  }
  getScriptNameOrSourceURL() {
    return this._file;
  }
  getLineNumber() {
    return this._line;
  }
  getColumnNumber() {
    return this._column;
  }
  getFunctionName() {
    return this._fn || null;
  }
  getMethodName() {
    return null;
  }
  getTypeName() {
    return null;
  }
  getThis() {
    return undefined;
  }
  getFunction() {
    return undefined;
  }
  getEvalOrigin() {
    return undefined;
  }
  isNative() {
    return false;
  }
  isEval() {
    return false;
  }
  isToplevel() {
    return !this._fn;
  }
  isConstructor() {
    return false;
  }
  isAsync() {
    return false;
  }
  isPromiseAll() {
    return false;
  }
  getPromiseIndex() {
    return null;
  }
  toString() {
    const where = `${this._file}:${this._line}:${this._column}`;
    return this._fn ? `${this._fn} (${where})` : where;
  }
}

function callSites(stack) {
  const sites = [];
  for (const line of String(stack).split('\n')) {
    const m = /^(.*?)@(.*):(\d+):(\d+)$/.exec(line);
    if (m) sites.push(new CallSite(m[1].replace(/^async\*/, ''), m[2], Number(m[3]), Number(m[4])));
  }
  return sites;
}

const nativeCapture = Error.captureStackTrace;
if (!Number.isFinite(Error.stackTraceLimit)) Error.stackTraceLimit = 10;

Error.captureStackTrace = function captureStackTrace(target, constructorOpt) {
  const prepare = Error.prepareStackTrace;
  if (typeof prepare !== 'function' && nativeCapture) {
    nativeCapture.call(Error, target, constructorOpt);
    return;
  }
  // Drop this function's frame, and those down to constructorOpt's.
  let sites = callSites(new Error().stack).slice(1);
  const name = constructorOpt && constructorOpt.name;
  const i = name ? sites.findIndex((s) => s._fn === name || s._fn.endsWith(`/${name}`)) : -1;
  if (i >= 0) sites = sites.slice(i + 1);
  const limit = Number.isFinite(Error.stackTraceLimit) ? Math.max(0, Error.stackTraceLimit) : 10;
  sites = sites.slice(0, limit);
  const stack =
    typeof prepare === 'function'
      ? prepare(target, sites)
      : [String(target), ...sites.map((s) => `    at ${s}`)].join('\n');
  Object.defineProperty(target, 'stack', { value: stack, writable: true, configurable: true });
};
