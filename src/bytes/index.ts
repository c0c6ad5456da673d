export { assertBytes, equalBytes, parseHex, toHex } from './hex.js';
