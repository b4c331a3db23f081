'use strict';
// node:os, as a dyno sees it: one WebAssembly thread, no host to look at.
const cpu = { model: 'wasm32', speed: 0, times: { user: 0, nice: 0, sys: 0, idle: 0, irq: 0 } };

module.exports = {
  EOL: '\n',
  arch: () => 'wasm32',
  availableParallelism: () => 1,
  constants: { signals: {}, errno: {}, priority: {} },
  cpus: () => [cpu],
  devNull: '/dev/null',
  endianness: () => 'LE',
  freemem: () => 0,
  homedir: () => '/',
  hostname: () => 'localhost',
  loadavg: () => [0, 0, 0],
  machine: () => 'wasm32',
  networkInterfaces: () => ({}),
  platform: () => 'linux',
  release: () => '',
  tmpdir: () => '/tmp',
  totalmem: () => 0,
  type: () => 'Linux',
  uptime: () => performance.now() / 1000,
  userInfo: () => ({ uid: 0, gid: 0, username: 'dyno', homedir: '/', shell: null }),
  version: () => '',
};
