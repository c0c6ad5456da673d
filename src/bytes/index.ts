export { assertBytes, equalBytes, parseHex, toHex } from './hex.js';
export { jsonOf } from './json-of.js';
export { modelOf } from './model-of.js';
export { nullBody } from './null-body.js';
export {
  type ChunkReader,
  chunkReader,
  discardBody,
  type ReadCappedOptions,
  readCapped,
} from './read-capped.js';
