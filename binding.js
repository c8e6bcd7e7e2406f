'use strict'
// The native addon for this platform (see loader.js); its types are generated in binding.d.ts.
module.exports = require('./loader.js').load()
