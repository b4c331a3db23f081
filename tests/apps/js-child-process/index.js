// Shells out: a WebAssembly dyno cannot, and the JS buildpack says so.
const { execSync } = require('child_process');
const http = require('http');

http.createServer((req, res) => res.end(execSync('uptime'))).listen(process.env.PORT || 3000);
