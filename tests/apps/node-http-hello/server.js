// A plain node:http server, as it would run on any host.
const http = require('http');

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/') {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('Hello from node:http\n');
  } else if (req.method === 'POST' && req.url === '/echo') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ method: req.method, type: req.headers['content-type'], body }));
    });
  } else if (req.url === '/stream') {
    // Written in parts: the body streams.
    res.write('one\n');
    setTimeout(() => {
      res.write('two\n');
      res.end('three\n');
    }, 10);
  } else {
    res.statusCode = 404;
    res.end(`no ${req.url} here\n`);
  }
});

server.listen(process.env.PORT || 3000, () => console.log('node-http-hello is listening'));
