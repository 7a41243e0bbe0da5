// Test fixture for posture's leak probe (tests/probes/test_leak_frameworks.py).
// A deliberately buggy little catalogue: /item parses its id as JSON, so a
// quote or a word in ?id= throws. Express's own final handler then answers
// with the stack trace in development and a bare message in production
// (NODE_ENV decides; nothing here sets an error handler of its own).
'use strict';

const express = require('express');

const app = express();

app.get('/', (req, res) => {
  res.type('html').send(
    '<!doctype html><html><head><title>Fixture Securities</title></head><body>' +
    '<h1>Fixture Securities</h1>' +
    '<p>Our engineers write about error handling, SQL and exceptions on the blog.</p>' +
    '<a href="/item?id=1">Item 1</a> <a href="/about">About</a>' +
    '</body></html>');
});

app.get('/about', (req, res) => {
  res.type('html').send('<html><body><p>About us</p></body></html>');
});

app.get('/item', (req, res) => {
  const parsed = JSON.parse('{"id": ' + req.query.id + '}');
  res.type('html').send('<html><body><p>Item ' + Number(parsed.id) + '</p></body></html>');
});

const [host, port] = [process.argv[2] || '127.0.0.1', Number(process.argv[3] || 3000)];
app.listen(port, host, () => {
  process.stdout.write('listening on ' + host + ':' + port + '\n');
});
