export { assertBytes, equalBytes, parseHex, toHex } from './hex.js';
export { jsonOf } from './json-of.js';
export { type ReadCappedOptions, readCapped } from './read-capped.js';
