import { endToEnd } from './suite.mjs'
import { prepareApp15 } from '../../scripts/next-fleet.mjs'

endToEnd({ name: 'Next 15.5', dir: prepareApp15(), next16: false, port: 3211 })
