import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { verifyReceipts } from '../gateway/index.js';
import { explainParseError } from './parse-error.js';

export const RECEIPTS_USAGE = `Usage: teeml-sidecar receipts verify <file> [--json]

Re-checks a gateway receipts file offline: every attestation line's TDX quote binds its signing key
and nonce (report_data) and its recorded checks passed; every receipt's signed text is its request
and response sha256, its signature verifies for the attested key, and it names an attestation line
of the file. Intel collateral and NRAS are not consulted again. Exit status: 0 all lines verify,
1 a line does not, 2 usage error.
`;

export const receiptsCommand = async (
  argv: string[],
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WritableStream,
  deps: { readFile?: (path: string) => Promise<string> } = {},
): Promise<number> => {
  let file: string;
  let json: boolean;
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help === true) {
      stdout.write(RECEIPTS_USAGE);
      return 0;
    }
    if (positionals[0] !== 'verify' || positionals.length !== 2 || positionals[1] === undefined)
      throw new Error('expected: receipts verify <file>');
    file = positionals[1];
    json = values.json === true;
  } catch (caught) {
    const error = explainParseError(caught, ['json', 'help']);
    stderr.write(`teeml-sidecar receipts: ${(error as Error).message}\n\n${RECEIPTS_USAGE}`);
    return 2;
  }
  let text: string;
  try {
    text = await (deps.readFile ?? ((p: string) => readFile(p, 'utf8')))(file);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a directory, not a file' : 'unreadable';
    stderr.write(
      `teeml-sidecar receipts: cannot read ${file}: ${why}${typeof code === 'string' ? ` (${code})` : ''}\n` +
        '  the receipts file is the one given to the gateway as --receipts <file>\n',
    );
    return 2;
  }
  const result = await verifyReceipts(text);
  if (json) stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    for (const v of result.verdicts) {
      stdout.write(
        `${v.ok ? 'PASS' : 'FAIL'} line ${v.line} ${v.type}${v.id === undefined ? '' : ` ${v.id}`}${v.ok ? '' : `: ${v.problems.join('; ')}`}\n`,
      );
    }
    stdout.write(
      `verdict: ${result.ok ? 'PASS' : 'FAIL'} (${result.receipts} receipts, ${result.attestations} attestations, ${result.verdicts.filter((v) => !v.ok).length} failed lines)\n`,
    );
  }
  return result.ok ? 0 : 1;
};
