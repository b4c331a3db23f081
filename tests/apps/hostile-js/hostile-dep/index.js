module.exports = "hostile-dep";
