'use strict';
// node:fs, minimal: a JS dyno has no files it can reach (StarlingMonkey's
// wasi:http world has no filesystem), so every path reads as missing and
// every write fails. Packages that only look for a file (a view engine, a
// static dir, etag's Stats check) load and run; serving files does not.
const { Readable, Writable } = require('stream');

function fsError(code, errno, text, syscall, path) {
  const e = new Error(`${code}: ${text}, ${syscall}${path === undefined ? '' : ` '${path}'`}`);
  return Object.assign(e, { code, errno, syscall, path });
}
const missing = (syscall, path) => fsError('ENOENT', -2, 'no such file or directory', syscall, String(path));
const readOnly = (syscall, path) => fsError('EROFS', -30, 'read-only file system', syscall, String(path));

class Stats {
  isFile() {
    return false;
  }
  isDirectory() {
    return false;
  }
  isSymbolicLink() {
    return false;
  }
  isBlockDevice() {
    return false;
  }
  isCharacterDevice() {
    return false;
  }
  isFIFO() {
    return false;
  }
  isSocket() {
    return false;
  }
}

const constants = {
  F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1,
  O_RDONLY: 0, O_WRONLY: 1, O_RDWR: 2, O_CREAT: 64, O_EXCL: 128, O_TRUNC: 512, O_APPEND: 1024,
  S_IFMT: 61440, S_IFREG: 32768, S_IFDIR: 16384, S_IFLNK: 40960,
};

const READS = ['access', 'open', 'readFile', 'readdir', 'readlink', 'stat', 'lstat', 'opendir'];
const WRITES = ['appendFile', 'chmod', 'chown', 'copyFile', 'mkdir', 'mkdtemp', 'rename', 'rm', 'rmdir',
  'symlink', 'truncate', 'unlink', 'utimes', 'writeFile', 'link', 'cp'];

const fs = { Stats, constants, ...constants };
const promises = { constants };

for (const [names, error] of [[READS, missing], [WRITES, readOnly]]) {
  for (const name of names) {
    fs[`${name}Sync`] = (path, options) => {
      if (options && options.throwIfNoEntry === false && error === missing) return undefined;
      throw error(name, path);
    };
    fs[name] = (path, ...rest) => {
      const cb = rest.reverse().find((a) => typeof a === 'function');
      const err = error(name, path);
      if (cb) process.nextTick(() => cb(err));
    };
    promises[name] = async (path) => {
      throw error(name, path);
    };
  }
}

fs.existsSync = () => false;
fs.exists = (path, cb) => process.nextTick(() => cb(false));
fs.realpathSync = (path) => String(path);
fs.realpathSync.native = fs.realpathSync;
fs.realpath = (path, ...rest) => {
  const cb = rest.reverse().find((a) => typeof a === 'function');
  process.nextTick(() => cb(null, String(path)));
};
fs.realpath.native = fs.realpath;
promises.realpath = async (path) => String(path);
fs.watch = () => {
  throw fsError('ENOSYS', -38, 'function not implemented', 'watch');
};
fs.watchFile = fs.watch;
fs.unwatchFile = () => {};
fs.close = (fd, cb) => cb && process.nextTick(cb);
fs.closeSync = () => {};

fs.createReadStream = (path) => {
  const s = new Readable({ read() {} });
  s.path = path;
  process.nextTick(() => s.destroy(missing('open', path)));
  return s;
};
fs.createWriteStream = (path) => {
  const s = new Writable({ write(chunk, enc, cb) { cb(readOnly('open', path)); } });
  s.path = path;
  process.nextTick(() => s.destroy(readOnly('open', path)));
  return s;
};
fs.ReadStream = Readable;
fs.WriteStream = Writable;
fs.promises = promises;

module.exports = fs;
