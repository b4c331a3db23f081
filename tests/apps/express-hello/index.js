// An Express 5 app as it would run on any host: nothing in it knows wdyno.
const express = require('express');

const app = express();
app.use(express.json());

app.get('/', (req, res) => res.send('Hello from Express'));
app.get('/users/:id', (req, res) => res.json({ id: req.params.id, query: req.query }));
app.post('/echo', (req, res) => res.status(201).json({ got: req.body }));
app.get('/dyno', (req, res) => res.type('text').send(`${process.env.DYNO} ${app.get('env')}`));

const port = process.env.PORT || 3000;
app.listen(port, () => console.log('express-hello is listening'));
