import { endToEnd } from './suite.mjs'
import { appDir } from '../../scripts/next-fleet.mjs'

endToEnd({ name: 'Next 16', dir: appDir, next16: true, port: 3201 })
