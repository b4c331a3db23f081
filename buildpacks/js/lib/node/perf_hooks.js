'use strict';
// node:perf_hooks: StarlingMonkey's performance clock.
class PerformanceObserver {
  observe() {}
  disconnect() {}
}
module.exports = { performance: globalThis.performance, PerformanceObserver };
