// node's globals that StarlingMonkey lacks, injected by esbuild wherever a
// module names them (Buffer, process, global, setImmediate, clearImmediate).
import process from 'process';
import { Buffer } from 'buffer';

const global = globalThis;

function setImmediate(fn, ...args) {
  try {
    return setTimeout(() => fn(...args), 0);
  } catch {
    // At build time StarlingMonkey has no timers: run it after this task.
    queueMicrotask(() => fn(...args));
    return undefined;
  }
}

function clearImmediate(id) {
  clearTimeout(id);
}

export { Buffer, clearImmediate, global, process, setImmediate };
