'use strict';
module.exports = require('./timers.js').promises;
