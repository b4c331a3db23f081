'use strict';
// node's `process` for a wdyno JS dyno (also the global `process`).
//
// process.env is the dyno's environment (wasi:cli/environment), read on
// first use once the dyno runs. A module's top level runs at build time,
// while componentize-js snapshots it, when the host cannot be called: until
// the first request (or a worker's run) process.env is the build's env,
// only NODE_ENV, so `app.listen(process.env.PORT || 3000)` at the top level
// works (the port is ignored: the dyno's wasi:http handler serves the
// router). NODE_ENV defaults to the build's at run time too ("production"
// unless the app's config says otherwise), as on Heroku.

const EventEmitter = require('events');

let getEnvironment = null;
let buildEnv = {};
let live = false;
let env = null;

const process = new EventEmitter();

// Called by the bundle's prelude: the WASI import and the build's env.
process.__wdynoBind = (get, atBuild) => {
  getEnvironment = get;
  buildEnv = atBuild;
};
// Called when the dyno starts serving (the first fetch event, a worker's run).
process.__wdynoLive = () => {
  live = true;
};

Object.defineProperty(process, 'env', {
  configurable: true,
  enumerable: true,
  get() {
    if (env) return env;
    if (!live || !getEnvironment) return buildEnv;
    env = Object.fromEntries(getEnvironment());
    for (const [k, v] of Object.entries(buildEnv)) env[k] ??= v;
    return env;
  },
  set(value) {
    env = value;
  },
});

process.title = 'wdyno';
process.version = 'v20.0.0';
process.versions = { node: '20.0.0' };
process.platform = 'linux';
process.arch = 'wasm32';
process.release = { name: 'node' };
process.pid = 1;
process.ppid = 0;
process.argv = ['node', 'web'];
process.execArgv = [];
process.execPath = '/usr/bin/node';
process.exitCode = undefined;
process.config = { variables: {} };
process.features = {};
process.noDeprecation = false;
process.throwDeprecation = false;
process.traceDeprecation = false;

process.cwd = () => '/';
process.chdir = () => {
  throw new Error('process.chdir is not available in a wdyno dyno');
};
process.umask = () => 0o22;
process.getuid = () => 0;
process.getgid = () => 0;
process.geteuid = () => 0;
process.getegid = () => 0;
process.nextTick = (fn, ...args) => {
  queueMicrotask(() => fn(...args));
};
process.emitWarning = (warning, type) => {
  const text = warning instanceof Error ? `${warning.name}: ${warning.message}` : String(warning);
  console.warn(type && !(warning instanceof Error) ? `(node) ${type}: ${text}` : `(node) ${text}`);
};
process.exit = (code) => {
  throw new Error(`process.exit(${code ?? ''}) called: a web dyno serves until it is stopped`);
};
process.abort = () => process.exit(134);
process.kill = () => {
  throw new Error('process.kill is not available in a wdyno dyno');
};
process.binding = (name) => {
  throw new Error(`process.binding(${JSON.stringify(name)}) is not available in a wdyno dyno`);
};
process.hrtime = (prev) => {
  const ns = BigInt(Math.round(performance.now() * 1e6));
  let s = Number(ns / 1000000000n);
  let n = Number(ns % 1000000000n);
  if (prev) {
    s -= prev[0];
    n -= prev[1];
    if (n < 0) {
      s -= 1;
      n += 1e9;
    }
  }
  return [s, n];
};
process.hrtime.bigint = () => BigInt(Math.round(performance.now() * 1e6));
process.uptime = () => performance.now() / 1000;
process.memoryUsage = () => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 });
process.memoryUsage.rss = () => 0;
process.cpuUsage = () => ({ user: 0, system: 0 });
process.resourceUsage = () => ({});

function stdio(fd, log) {
  const s = new EventEmitter();
  s.fd = fd;
  s.isTTY = false;
  s.writable = true;
  // A dyno's stdout and stderr are lines in its log.
  let partial = '';
  s.write = (chunk, encoding, cb) => {
    const text = partial + (typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk));
    const lines = text.split('\n');
    partial = lines.pop();
    for (const l of lines) log(l);
    const done = typeof encoding === 'function' ? encoding : cb;
    if (done) queueMicrotask(done);
    return true;
  };
  s.end = (chunk, encoding, cb) => {
    if (chunk) s.write(chunk, encoding);
    if (partial) log(partial);
    partial = '';
    if (typeof cb === 'function') queueMicrotask(cb);
  };
  return s;
}
process.stdout = stdio(1, (l) => console.log(l));
process.stderr = stdio(2, (l) => console.error(l));
process.stdin = new EventEmitter();
process.stdin.fd = 0;
process.stdin.isTTY = false;

globalThis.process = process;
module.exports = process;
