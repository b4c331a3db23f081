'use strict';
module.exports = require('./fs.js').promises;
