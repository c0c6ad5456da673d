import { readFileSync } from 'node:fs';
import { sharedFixtures } from '../paths.js';

/**
 * Every real TDX quote in ../shared/attestation-fixtures, with the facts its README lists
 * (section 3: version/body, size, sha256, MRTD, report_data) and the collateral + fixed clock at
 * which it verifies. Values abbreviated there ("f06dfda6…fa87077") are checked by prefix/suffix.
 */
export interface FixtureQuote {
  name: string;
  bytes: Uint8Array;
  version: 4 | 5;
  bodyType: 2 | 3;
  size: number;
  /** Full sha256 hex, or [prefix, suffix]. */
  sha256: string | [string, string];
  mrtd: string | [string, string];
  reportData: string | [string, string];
  sigDataLength?: number;
  /** Collateral that verifies it, the fixed clock, and the expected outcome. */
  collateral: string;
  nowSecs: number;
  expect: { status: 'UpToDate' } | { error: string };
}

const E2E = 'e2e/nearcloud_qwen_qwen3.5-122b-a10b_20260629_020657/derived';
const bin = (path: string) => new Uint8Array(readFileSync(sharedFixtures(path)));
const hexFile = (path: string) =>
  new Uint8Array(Buffer.from(readFileSync(sharedFixtures(path), 'utf8'), 'hex'));
const jsonQuote = (path: string) => {
  const json = JSON.parse(readFileSync(sharedFixtures(path), 'utf8')) as { quote: string };
  return new Uint8Array(Buffer.from(json.quote, 'hex'));
};
const asciiHex = (text: string) => Buffer.from(text, 'ascii').toString('hex');

export const fixtureQuotes = (): FixtureQuote[] => [
  {
    name: 'tdx/dcap-qvl-sample/tdx_quote',
    bytes: bin('tdx/dcap-qvl-sample/tdx_quote'),
    version: 4,
    bodyType: 2,
    size: 5006,
    sha256: 'c42f9164325024bca2757bc8819b11879a0a369132ea4e2b7c85df4805ea72db',
    mrtd: '91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7',
    reportData:
      '9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20',
    collateral: 'tdx/dcap-qvl-sample/tdx_quote_collateral.json',
    nowSecs: 1751600000,
    expect: { status: 'UpToDate' },
  },
  {
    name: 'tdx/dcap-qvl-near-gas-test/quote_hex.txt',
    bytes: hexFile('tdx/dcap-qvl-near-gas-test/quote_hex.txt'),
    version: 4,
    bodyType: 2,
    size: 5006,
    sha256: 'aef4b17e36726b756409335cde8ed8eaf74e89cf98a315c6f997a62d32c5ab37',
    mrtd: 'f06dfda6dce1cf904d4e2bab1dc370634cf95cefa2ceb2de2eee127c9382698090d7a4a13e14c536ec6c9c3c8fa87077',
    reportData:
      '0001d579ba6e734a1046feb6112f852df5f4f1e44a4e7ce1755ce3b07bd6aaab04e89ca01fdf4956d2f609c2709731cb813a0000000000000000000000000000',
    collateral: 'tdx/dcap-qvl-near-gas-test/quote_collateral.json',
    nowSecs: 1758100000,
    expect: { status: 'UpToDate' },
  },
  {
    name: 'tdx/dcap-qvl-outdated-v5/tdx_quote_outdated',
    bytes: bin('tdx/dcap-qvl-outdated-v5/tdx_quote_outdated'),
    version: 5,
    bodyType: 3,
    size: 5006,
    sha256: ['4c453ea4', '58e9'],
    mrtd: '273828c46252fcbdd8ad2dd907130222b03466d52a2911d70c1a5950895d6bd1ae451d382d5a9b1b4c0ed0e5ae9a3dbd',
    reportData: `d2142b643598eb5fae2bc8529dd79a558b29f868ccbb6531cb28dab9dce47728${'00'.repeat(32)}`,
    collateral: 'tdx/dcap-qvl-outdated-v5/tdx_quote_outdated_collateral.json',
    nowSecs: 1772700000,
    expect: { error: 'No matching TCB level found' },
  },
  {
    name: 'dstack/verifier-fixtures/quote-report.json',
    bytes: jsonQuote('dstack/verifier-fixtures/quote-report.json'),
    version: 4,
    bodyType: 2,
    size: 5006,
    sha256: '731063646444b20ded6c258e1e541431e8a47d716fcafe10f77b1778f2ff0a9a',
    mrtd: 'b24d3b24e9e3c16012376b52362ca09856c4adecb709d5fac33addf1c47e193da075b125b6c364115771390a5461e217',
    reportData: `1234${'00'.repeat(62)}`,
    collateral: `${E2E}/model_intel_quote_collateral.json`,
    nowSecs: 1782700000,
    expect: { status: 'UpToDate' },
  },
  {
    name: 'dstack/verifier-fixtures/tdx-lite-getquote.json',
    bytes: jsonQuote('dstack/verifier-fixtures/tdx-lite-getquote.json'),
    version: 4,
    bodyType: 2,
    size: 5006,
    sha256: 'ce9491c22f10cefcc86ea2f20d443d7510a1ee12d7326419534fc096eace6452',
    mrtd: 'fd685522ce791dfef67414614eb07d03fc07a32c5a66f36288b329dab92b724b1564c73d436ffb9ea84488c51ac5a1c5',
    reportData: asciiHex('dip1::secp256k1c-pk:A55pWmteJIJOj8_pI7-pzeDxy1G2q18GDv88HNRdBXkQ'),
    collateral: `${E2E}/model_intel_quote_collateral.json`,
    nowSecs: 1782700000,
    expect: { status: 'UpToDate' },
  },
  {
    name: 'dstack/nearai-sample/SAMPLE_DSTACK_QUOTE.json',
    bytes: jsonQuote('dstack/nearai-sample/SAMPLE_DSTACK_QUOTE.json'),
    version: 4,
    bodyType: 2,
    size: 5010,
    sha256: '4a0563a5312de9d0277e5f62e42292e43221e8becce7832c5558f9d96e9afd49',
    mrtd: ['f06dfda6', 'fa87077'],
    reportData: '01'.repeat(64),
    sigDataLength: 4304,
    collateral: 'tdx/dcap-qvl-near-gas-test/quote_collateral.json',
    nowSecs: 1758100000,
    expect: { status: 'UpToDate' },
  },
  {
    name: `${E2E}/model_intel_quote.bin`,
    bytes: bin(`${E2E}/model_intel_quote.bin`),
    version: 4,
    bodyType: 2,
    size: 5010,
    sha256: ['c19965ef', '6ca5fe'],
    mrtd: ['b24d3b24', '5461e217'],
    reportData:
      '5b1ddd16927a106f1ea4a25909cc81ed1b277d699473c27e01b2db5e16f992eee79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609',
    sigDataLength: 4304,
    collateral: `${E2E}/model_intel_quote_collateral.json`,
    nowSecs: 1782700000,
    expect: { status: 'UpToDate' },
  },
  {
    name: `${E2E}/gateway_intel_quote.bin`,
    bytes: bin(`${E2E}/gateway_intel_quote.bin`),
    version: 4,
    bodyType: 2,
    size: 5006,
    sha256: ['dbd3b82f', '183941'],
    mrtd: ['f06dfda6', 'fa87077'],
    reportData:
      'b0f7047b02810d35ea412153ab471a8e8f43a6c1f6a47087314ee871c867392de79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609',
    collateral: `${E2E}/gateway_intel_quote_collateral.json`,
    nowSecs: 1782700000,
    expect: { status: 'UpToDate' },
  },
];

/** Compares hex with a full value or a [prefix, suffix] pair from the README. */
export const matchesHex = (actual: string, expected: string | [string, string]): boolean =>
  typeof expected === 'string'
    ? actual === expected
    : actual.startsWith(expected[0]) && actual.endsWith(expected[1]);

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
