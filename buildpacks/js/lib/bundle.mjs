// node lib/bundle.mjs TOOLS BUILD ENTRY OUT
//
// Bundles ENTRY (and the npm packages it imports) into one ES module OUT
// with esbuild from TOOLS, for StarlingMonkey. A node built-in the app or a
// package imports resolves to the buildpack's node layer (lib/node, on npm
// polyfills from TOOLS); one that cannot work in a dyno (child_process,
// worker_threads...) stops the build here, with what runs instead.
//
// Exits 0 when OUT is written, 2 when the app imports a built-in a dyno
// cannot have (the message is on stderr), 1 on any other esbuild error
// (esbuild's messages on stdout).
import fs from 'node:fs/promises';
import { builtinModules, createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [tools, build, entry, out] = process.argv.slice(2);
const lib = path.dirname(fileURLToPath(import.meta.url));
const fromTools = createRequire(path.join(tools, 'package.json'));
const esbuild = fromTools('esbuild');

// What each node built-in becomes: a file of lib/, or "polyfill:" an npm
// package of TOOLS.
const LAYER = {
  assert: 'node/assert.js',
  'assert/strict': 'node/assert.js',
  async_hooks: 'node/async_hooks.js',
  buffer: 'polyfill:buffer/',
  crypto: 'node/crypto.js',
  diagnostics_channel: 'node/diagnostics_channel.js',
  events: 'polyfill:events/',
  fs: 'node/fs.js',
  'fs/promises': 'node/fs-promises.js',
  http: 'node/http.js',
  https: 'node/https.js',
  net: 'node/net.js',
  os: 'node/os.js',
  path: 'polyfill:path-browserify',
  'path/posix': 'polyfill:path-browserify',
  perf_hooks: 'node/perf_hooks.js',
  process: 'node/process.js',
  punycode: 'polyfill:punycode/',
  querystring: 'polyfill:querystring-es3',
  stream: 'node/stream.js',
  'stream/promises': 'node/stream-promises.js',
  'stream/web': 'node/stream-web.js',
  string_decoder: 'polyfill:string_decoder/',
  timers: 'node/timers.js',
  'timers/promises': 'node/timers-promises.js',
  tty: 'node/tty.js',
  url: 'node/url.js',
  util: 'node/util.js',
  'util/types': 'node/util-types.js',
  zlib: 'node/zlib.js',
};

// Why the others cannot work, for the ones apps meet most.
const WHY = {
  child_process: 'a WebAssembly dyno cannot start processes',
  cluster: 'a WebAssembly dyno is one process and cannot fork (scale with ps:scale web=N)',
  worker_threads: 'a WebAssembly dyno has one thread',
  dgram: 'a JS dyno has no UDP sockets',
  dns: 'a JS dyno has no resolver of its own (fetch() resolves names)',
  http2: 'the router speaks HTTP/1.1 to a dyno',
  tls: 'the router terminates TLS, and a JS dyno has no raw sockets',
  module: "the bundle is one ES module, made at build time, with no module loader at run time",
  vm: 'a JS dyno cannot compile new code at run time',
  v8: "StarlingMonkey is SpiderMonkey, not V8",
};

const SUPPORTED =
  'a fetch event handler (addEventListener("fetch", ...)), Hono, and node:http servers (Express, Koa) ' +
  "through the buildpack's node layer: http, https, events, stream, buffer, url, querystring, path, util, " +
  'string_decoder, crypto (hashes, HMACs, random), timers, os, assert, async_hooks, diagnostics_channel, ' +
  'and fs, net, tty and zlib in part';

const builtin = new Set(builtinModules);

function target(spec) {
  return spec.startsWith('polyfill:') ? fromTools.resolve(spec.slice('polyfill:'.length)) : path.join(lib, spec);
}

// StarlingMonkey is built without ICU: its regular expressions have no
// Unicode property escapes (\p{ID_Start}, which Express 5's path-to-regexp
// uses). regexpu-core rewrites them, in regex literals, into the code point
// ranges they stand for.
const rewritePattern = fromTools('regexpu-core');
const REGEX_LITERAL = /\/((?:\\.|\[(?:\\.|[^\]\\\n])*\]|[^/\\[\n])+)\/([dgimsuvy]*)/g;

const propertyEscapes = {
  name: 'wdyno-unicode-property-escapes',
  setup(b) {
    b.onLoad({ filter: /\.[cm]?js$/ }, async (args) => {
      const text = await fs.readFile(args.path, 'utf8');
      if (!/\\[pP]\{/.test(text)) return undefined;
      const contents = text.replace(REGEX_LITERAL, (whole, pattern, flags) => {
        if (!/[uv]/.test(flags) || !/\\[pP]\{/.test(pattern)) return whole;
        try {
          return `/${rewritePattern(pattern, flags, { unicodePropertyEscapes: 'transform', unicodeSetsFlag: 'transform' })}/${flags.replace('v', 'u')}`;
        } catch {
          return whole;
        }
      });
      return { contents, loader: 'js' };
    });
  },
};

const nodeLayer = {
  name: 'wdyno-node-layer',
  setup(b) {
    b.onResolve({ filter: /^polyfill:/ }, (args) => ({ path: target(args.path) }));
    b.onResolve({ filter: /^(node:)?[a-z_]+(\/[a-z_]+)?\/?$/ }, (args) => {
      const name = args.path.replace(/^node:/, '').replace(/\/$/, '');
      if (!args.path.startsWith('node:') && !builtin.has(name)) return undefined;
      if (LAYER[name]) return { path: target(LAYER[name]) };
      return { errors: [{ text: 'wdyno: refused', detail: name }] };
    });
  },
};

try {
  const result = await esbuild.build({
    absWorkingDir: build,
    entryPoints: [entry],
    outfile: out,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    // WIT imports stay imports, for componentize-js.
    external: ['wasi:*'],
    inject: [path.join(lib, 'node/globals.js')],
    plugins: [nodeLayer, propertyEscapes],
    logLevel: 'silent',
  });
  print(result.warnings, 'warning');
} catch (e) {
  if (!e.errors) throw e;
  const refused = e.errors.filter((m) => m.text === 'wdyno: refused');
  if (refused.length) {
    const seen = new Set();
    for (const m of refused) {
      const name = m.detail;
      const where = m.location ? `${m.location.file}:${m.location.line}` : entry;
      if (seen.has(`${where} ${name}`)) continue;
      seen.add(`${where} ${name}`);
      const why = WHY[name] ?? 'a WebAssembly dyno does not have it';
      console.error(` !     ${where} imports node's ${name}, which cannot work in a wdyno dyno: ${why}.`);
    }
    console.error(` !       What runs: ${SUPPORTED}.`);
    console.error(
      ' !       Port that code, or choose a package that does without it: examples/js-web (a fetch event) ' +
        'and examples/js-express (Express) in the wdyno repository show how.',
    );
    process.exit(2);
  }
  print(e.warnings, 'warning');
  print(e.errors, 'error');
  process.exit(1);
}

function print(messages, kind) {
  if (!messages || !messages.length) return;
  for (const text of esbuild.formatMessagesSync(messages, { kind, color: false })) process.stdout.write(text);
}
