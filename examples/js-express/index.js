// An Express app written as for any host: app.listen(process.env.PORT).
const express = require('express');

const app = express();
app.use(express.json());

app.get('/', (req, res) => {
  res.send(`Hello from js-express on ${process.env.DYNO ?? 'a dyno'}\n`);
});

app.get('/hello/:name', (req, res) => {
  res.send(`Hello, ${req.params.name}!\n`);
});

app.post('/greetings', (req, res) => {
  if (typeof req.body?.name !== 'string') {
    return res.status(400).json({ error: 'send {"name": "..."}' });
  }
  res.status(201).json({ greeting: `Hello, ${req.body.name}!` });
});

const port = process.env.PORT || 3000;
app.listen(port, () => console.log(`js-express listening on ${port}`));
