// An Express app written as for any host: app.listen(process.env.PORT).
const express = require('express');

const app = express();
app.use(express.json());

const notes = [];

app.get('/', (req, res) => {
  res.send(`Hello from js-express on ${process.env.DYNO ?? 'a dyno'}\n`);
});

app.get('/hello/:name', (req, res) => {
  res.send(`Hello, ${req.params.name}!\n`);
});

// Per dyno and in memory: a dyno's state is gone when it restarts.
app.post('/notes', (req, res) => {
  if (typeof req.body?.text !== 'string') {
    return res.status(400).json({ error: 'send {"text": "..."}' });
  }
  notes.push(req.body.text);
  res.status(201).json({ id: notes.length, text: req.body.text });
});

app.get('/notes', (req, res) => res.json(notes));

const port = process.env.PORT || 3000;
app.listen(port, () => console.log(`js-express listening on ${port}`));
