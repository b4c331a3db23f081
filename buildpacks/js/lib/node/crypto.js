'use strict';
// node:crypto, the part web frameworks use: SHA-1 and SHA-256 hashes and
// HMACs (ETags, signed cookies), random bytes and UUIDs, constant-time
// comparison. Ciphers and keys: crypto.subtle (webcrypto), StarlingMonkey's.
const { Buffer } = require('buffer');

function rotl(x, n) {
  return (x << n) | (x >>> (32 - n));
}
function rotr(x, n) {
  return (x >>> n) | (x << (32 - n));
}

// The first 32 bits of the fractional parts of the square roots (IV) and
// cube roots (K) of the first primes, as FIPS 180-4 defines them.
const PRIMES = [];
for (let n = 2; PRIMES.length < 64; n++) if (PRIMES.every((p) => n % p)) PRIMES.push(n);
const frac32 = (x) => Math.floor((x - Math.floor(x)) * 2 ** 32) | 0;
const SHA256_IV = PRIMES.slice(0, 8).map((p) => frac32(Math.sqrt(p)));
const SHA256_K = PRIMES.map((p) => frac32(Math.cbrt(p)));
const SHA1_IV = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
const SHA1_K = [0x5a827999, 0x6ed9eba1, 0x8f1bbcdc, 0xca62c1d6];

function sha1Block(h, w, block) {
  for (let t = 0; t < 16; t++) w[t] = block.getInt32(t * 4);
  for (let t = 16; t < 80; t++) w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
  let [a, b, c, d, e] = h;
  for (let t = 0; t < 80; t++) {
    const s = t / 20 | 0;
    const f = s === 0 ? (b & c) | (~b & d) : s === 2 ? (b & c) | (b & d) | (c & d) : b ^ c ^ d;
    const tmp = (rotl(a, 5) + f + e + SHA1_K[s] + w[t]) | 0;
    e = d;
    d = c;
    c = rotl(b, 30);
    b = a;
    a = tmp;
  }
  h[0] = (h[0] + a) | 0;
  h[1] = (h[1] + b) | 0;
  h[2] = (h[2] + c) | 0;
  h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0;
}

function sha256Block(h, w, block) {
  for (let t = 0; t < 16; t++) w[t] = block.getInt32(t * 4);
  for (let t = 16; t < 64; t++) {
    const s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
    const s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
    w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
  }
  let [a, b, c, d, e, f, g, hh] = h;
  for (let t = 0; t < 64; t++) {
    const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + SHA256_K[t] + w[t]) | 0;
    const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    hh = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  [a, b, c, d, e, f, g, hh].forEach((x, i) => {
    h[i] = (h[i] + x) | 0;
  });
}

const ALGORITHMS = {
  sha1: { iv: SHA1_IV, block: sha1Block, words: 80 },
  sha256: { iv: SHA256_IV, block: sha256Block, words: 64 },
};

function algorithm(name) {
  const alg = ALGORITHMS[String(name).toLowerCase().replace('-', '')];
  if (!alg) {
    throw new Error(`wdyno: crypto hash "${name}" is not available in a JS dyno (sha1 and sha256 are; crypto.subtle has more)`);
  }
  return alg;
}

function toBytes(data, encoding) {
  if (typeof data === 'string') return Buffer.from(data, encoding || 'utf8');
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError('The "data" argument must be of type string or an instance of Buffer, TypedArray, or DataView');
}

function encode(bytes, encoding) {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return encoding && encoding !== 'buffer' ? b.toString(encoding) : b;
}

/** A Merkle–Damgård hash over 64-byte blocks (SHA-1, SHA-256). */
class Hash {
  constructor(name, alg = algorithm(name)) {
    this._name = name;
    this._alg = alg;
    this._h = Int32Array.from(alg.iv);
    this._w = new Int32Array(alg.words);
    this._buf = new Uint8Array(64);
    this._view = new DataView(this._buf.buffer);
    this._used = 0;
    this._length = 0;
    this._done = false;
  }

  update(data, encoding) {
    if (this._done) throw Object.assign(new Error('Digest already called'), { code: 'ERR_CRYPTO_HASH_FINALIZED' });
    const bytes = toBytes(data, encoding);
    this._length += bytes.byteLength;
    let i = 0;
    while (i < bytes.byteLength) {
      const n = Math.min(64 - this._used, bytes.byteLength - i);
      this._buf.set(bytes.subarray(i, i + n), this._used);
      this._used += n;
      i += n;
      if (this._used === 64) {
        this._alg.block(this._h, this._w, this._view);
        this._used = 0;
      }
    }
    return this;
  }

  _finish() {
    this._done = true;
    const bits = this._length * 8;
    const pad = new Uint8Array(((this._used < 56 ? 56 : 120) - this._used) + 8);
    pad[0] = 0x80;
    const v = new DataView(pad.buffer);
    v.setUint32(pad.length - 8, Math.floor(bits / 2 ** 32));
    v.setUint32(pad.length - 4, bits >>> 0);
    this._done = false;
    this.update(pad);
    this._done = true;
    const out = new Uint8Array(this._h.length * 4);
    const ov = new DataView(out.buffer);
    this._h.forEach((x, i) => ov.setInt32(i * 4, x));
    return out;
  }

  digest(encoding) {
    return encode(this._finish(), encoding);
  }

  copy() {
    const c = new Hash(this._name, this._alg);
    c._h.set(this._h);
    c._buf.set(this._buf);
    c._used = this._used;
    c._length = this._length;
    return c;
  }
}

class Hmac {
  constructor(name, key) {
    const alg = algorithm(name);
    let k = key && typeof key === 'object' && key.export ? key.export() : toBytes(key);
    if (k.byteLength > 64) k = new Hash(name, alg).update(k)._finish();
    const pad = (x) => {
      const p = new Uint8Array(64).fill(x);
      for (let i = 0; i < k.byteLength; i++) p[i] ^= k[i];
      return p;
    };
    this._outer = new Hash(name, alg).update(pad(0x5c));
    this._inner = new Hash(name, alg).update(pad(0x36));
  }
  update(data, encoding) {
    this._inner.update(data, encoding);
    return this;
  }
  digest(encoding) {
    return encode(this._outer.update(this._inner._finish())._finish(), encoding);
  }
}

function randomFill(bytes) {
  for (let i = 0; i < bytes.byteLength; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, Math.min(i + 65536, bytes.byteLength)));
  }
  return bytes;
}

function randomBytes(size, cb) {
  const b = randomFill(Buffer.alloc(size));
  if (cb) {
    process.nextTick(() => cb(null, b));
    return undefined;
  }
  return b;
}

function randomInt(min, max, cb) {
  if (max === undefined || typeof max === 'function') [min, max, cb] = [0, min, max];
  const range = max - min;
  const n = new Uint32Array(1);
  const limit = 2 ** 32 - (2 ** 32 % range);
  do crypto.getRandomValues(n);
  while (n[0] >= limit);
  const v = min + (n[0] % range);
  if (cb) {
    process.nextTick(() => cb(null, v));
    return undefined;
  }
  return v;
}

function timingSafeEqual(a, b) {
  if (a.byteLength !== b.byteLength) {
    throw Object.assign(new RangeError('Input buffers must have the same byte length'), {
      code: 'ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH',
    });
  }
  const x = toBytes(a);
  const y = toBytes(b);
  let diff = 0;
  for (let i = 0; i < x.byteLength; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

function unavailable(what) {
  return () => {
    throw new Error(`wdyno: crypto.${what} is not available in a JS dyno; use crypto.subtle (webcrypto)`);
  };
}

module.exports = {
  Hash,
  Hmac,
  createCipheriv: unavailable('createCipheriv'),
  createDecipheriv: unavailable('createDecipheriv'),
  createHash: (name) => new Hash(name),
  createHmac: (name, key) => new Hmac(name, key),
  createSign: unavailable('createSign'),
  createVerify: unavailable('createVerify'),
  getHashes: () => Object.keys(ALGORITHMS),
  getRandomValues: (a) => crypto.getRandomValues(a),
  pbkdf2: unavailable('pbkdf2'),
  pbkdf2Sync: unavailable('pbkdf2Sync'),
  randomBytes,
  randomFillSync: (b) => randomFill(toBytes(b)) && b,
  randomInt,
  randomUUID: () => crypto.randomUUID(),
  subtle: globalThis.crypto && globalThis.crypto.subtle,
  timingSafeEqual,
  webcrypto: globalThis.crypto,
};
