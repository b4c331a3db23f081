'use strict';
// node:zlib: not in a JS dyno yet. Loading it works (body-parser does, to
// inflate gzip request bodies); compressing or inflating throws.
const constants = {
  Z_NO_FLUSH: 0, Z_PARTIAL_FLUSH: 1, Z_SYNC_FLUSH: 2, Z_FULL_FLUSH: 3, Z_FINISH: 4, Z_BLOCK: 5,
  Z_OK: 0, Z_STREAM_END: 1, Z_NEED_DICT: 2, Z_DEFAULT_COMPRESSION: -1, Z_BEST_SPEED: 1,
  Z_BEST_COMPRESSION: 9, BROTLI_OPERATION_PROCESS: 0, BROTLI_OPERATION_FLUSH: 1,
  BROTLI_OPERATION_FINISH: 2, BROTLI_PARAM_QUALITY: 1,
};

const zlib = { constants, ...constants };
for (const kind of ['Gzip', 'Gunzip', 'Deflate', 'Inflate', 'DeflateRaw', 'InflateRaw', 'Unzip',
  'BrotliCompress', 'BrotliDecompress']) {
  const fail = () => {
    throw new Error(`wdyno: zlib.${kind} is not available in a JS dyno; send and accept uncompressed bodies`);
  };
  const lower = kind[0].toLowerCase() + kind.slice(1);
  zlib[kind] = fail;
  zlib[`create${kind}`] = fail;
  zlib[lower] = fail;
  zlib[`${lower}Sync`] = fail;
}
module.exports = zlib;
