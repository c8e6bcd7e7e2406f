'use strict'
// The one error class of fleetcache's JS face, shared by the loader and the handler.

class FleetCacheError extends Error {
  constructor(code, message, options) {
    super(message, options)
    this.name = 'FleetCacheError'
    this.code = code
  }
}

module.exports = { FleetCacheError }
