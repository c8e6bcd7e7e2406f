'use strict'
// fleetcache's log lines: the process's one logger is the core's; this routes it to an app's
// logger and gives the JS face its warnings and debug lines.

const binding = require('../binding.js')
const { FleetCacheError } = require('../error.js')

const LEVELS = ['error', 'warn', 'info', 'debug']
let installedLogger

/**
 * Routes fleetcache's log lines to `logger` (`{ error, warn, info, debug }` functions: console,
 * pino, winston…, each called with one string `"<event>: <message>"`), instead of stderr.
 * `undefined`/`null` leaves the lines where they are. One logger per process: the last wins.
 */
function useLogger(logger) {
  if (logger === undefined || logger === null) return
  if (typeof logger !== 'object' && typeof logger !== 'function') {
    throw new FleetCacheError('FLEETCACHE_CONFIG', `\`logger\` must be an object with error/warn/info/debug functions, got ${typeof logger}`)
  }
  const missing = ['error', 'warn'].filter((l) => typeof logger[l] !== 'function')
  if (missing.length > 0) {
    throw new FleetCacheError('FLEETCACHE_CONFIG', `\`logger\` has no ${missing.join('/')} function (it needs error, warn, info and debug; info/debug may fall back to log)`)
  }
  if (installedLogger === logger) return
  installedLogger = logger
  binding.setLogSink((level, event, message) => {
    const line = event ? `${event}: ${message}` : message
    const fn = typeof logger[level] === 'function' ? logger[level] : typeof logger.log === 'function' ? logger.log : undefined
    if (fn === undefined || !LEVELS.includes(level)) return
    try {
      fn.call(logger, line)
    } catch {
      // A throwing logger must not take the request down with it.
    }
  })
}

/** Through the core's logger: one line per kind of event at most every 10 s, on stderr. */
function warn(what, detail) {
  binding.warn(what, String(detail))
}

/** Whether `FLEETCACHE_LOG=debug` is in force (read once: debug lines cost nothing otherwise). */
const debugOn = binding.debugEnabled()

module.exports = { useLogger, warn, debugOn }
