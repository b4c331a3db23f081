'use strict';
// node:https: the router terminates TLS, so an https server is an http one.
module.exports = require('./http.js');
