export { assertBytes, equalBytes, parseHex, toHex } from './hex.js';
export { type ReadCappedOptions, readCapped } from './read-capped.js';
