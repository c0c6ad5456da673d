import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { type ReceiptsVerification, type VerifyReceiptsOptions, verifyReceipts } from '../gateway/index.js';
import { explainParseError } from './parse-error.js';

/** `--mrtd a,b --mrtd c`: lowercase hex values of `bytes` bytes each, keyed by the flag's name. */
const hexList = (
  flag: string,
  values: readonly string[] | undefined,
  bytes: number,
): Record<string, string[]> => {
  const items = (values ?? [])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim().replace(/^0x/i, '').toLowerCase());
  for (const item of items)
    if (!new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(item))
      throw new Error(`--${flag}: expected ${bytes}-byte hex values, got one of length=${item.length}`);
  return items.length === 0 ? {} : { [flag]: items };
};

export const RECEIPTS_USAGE = `Usage: teeml-sidecar receipts verify <file> [--allow-simulated] [--mrtd <hex,...>] [--json]

Re-checks a gateway receipts file offline, taking nothing in it on its word:
  - every attestation line's TDX quote: its signatures up to Intel's SGX Root CA (attestation key
    over the TD report, QE report by the PCK certificate, PCK chain), its report_data binding of the
    signing key and nonce, and, where the gateway recorded Intel collateral, full DCAP verification
    with the TCB status at the recorded time;
  - every receipt: its signed text is its request and response sha256, its signature verifies for
    the attested key, and it names a verified attestation line of the file.
Each line, and the summary, say what was not checked (e.g. the request hash in 0G mode, NRAS).

  --allow-simulated  accept quotes that do not chain to Intel (simulated runs): those lines and the
                     verdict say SIMULATED. Without it they fail.
  --mrtd <hex,...>   allowed MRTD values (also --rtmr0, --rtmr1, --rtmr2): every attestation's
                     quote must be on them. Without them, a genuine quote from any TD passes.
  --compose-hash <hex>  the Dstack compose hash every attestation must show.
  --json             print the result as JSON.

Exit status: 0 all lines verify, 1 a line does not, 2 usage error.
`;

/** The command line, or a thrown Error naming what is wrong with it (a usage error). */
const parseReceiptsArgs = (
  argv: string[],
): { help: true } | { help: false; file: string; json: boolean; options: VerifyReceiptsOptions } => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      json: { type: 'boolean' },
      'allow-simulated': { type: 'boolean' },
      'compose-hash': { type: 'string' },
      mrtd: { type: 'string', multiple: true },
      rtmr0: { type: 'string', multiple: true },
      rtmr1: { type: 'string', multiple: true },
      rtmr2: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return { help: true };
  const file = positionals[1];
  if (positionals[0] !== 'verify' || positionals.length !== 2 || file === undefined)
    throw new Error('expected: receipts verify <file>');
  const allow = {
    ...hexList('mrtd', values.mrtd, 48),
    ...hexList('rtmr0', values.rtmr0, 48),
    ...hexList('rtmr1', values.rtmr1, 48),
    ...hexList('rtmr2', values.rtmr2, 48),
  };
  const composeHash = values['compose-hash'];
  const expected =
    composeHash === undefined ? undefined : hexList('compose-hash', [composeHash], 32)['compose-hash'];
  return {
    help: false,
    file,
    json: values.json === true,
    options: {
      allowSimulated: values['allow-simulated'] === true,
      ...(Object.keys(allow).length === 0 ? {} : { allow }),
      ...(expected?.[0] === undefined ? {} : { expectedComposeHash: expected[0] }),
    },
  };
};

export const receiptsCommand = async (
  argv: string[],
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WritableStream,
  deps: { readFile?: (path: string) => Promise<string> } = {},
): Promise<number> => {
  let args: ReturnType<typeof parseReceiptsArgs>;
  try {
    args = parseReceiptsArgs(argv);
  } catch (caught) {
    const error = explainParseError(caught, [
      'json',
      'help',
      'allow-simulated',
      'compose-hash',
      'mrtd',
      'rtmr0',
      'rtmr1',
      'rtmr2',
    ]);
    stderr.write(`teeml-sidecar receipts: ${(error as Error).message}\n\n${RECEIPTS_USAGE}`);
    return 2;
  }
  if (args.help) {
    stdout.write(RECEIPTS_USAGE);
    return 0;
  }
  let text: string;
  try {
    text = await (deps.readFile ?? ((p: string) => readFile(p, 'utf8')))(args.file);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a directory, not a file' : 'unreadable';
    stderr.write(
      `teeml-sidecar receipts: cannot read ${args.file}: ${why}${typeof code === 'string' ? ` (${code})` : ''}\n` +
        '  the receipts file is the one given to the gateway as --receipts <file>\n',
    );
    return 2;
  }
  const result = await verifyReceipts(text, args.options);
  if (args.json) stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else stdout.write(renderReceipts(result));
  return result.ok ? 0 : 1;
};

/** One line per line of the file, then the verdict and what it does not cover. */
const renderReceipts = (result: ReceiptsVerification): string => {
  const out: string[] = [];
  for (const v of result.verdicts) {
    const head = `${v.ok ? 'PASS' : 'FAIL'} line ${v.line} ${v.type}${v.id === undefined ? '' : ` ${v.id}`}`;
    const simulated = v.simulated === true ? ' SIMULATED' : '';
    const detail = v.ok
      ? v.notChecked.length === 0
        ? ''
        : ` (not checked: ${v.notChecked.join('; ')})`
      : `: ${v.problems.join('; ')}`;
    out.push(`${head}${simulated}${detail}\n`);
  }
  const failed = result.verdicts.filter((v) => !v.ok).length;
  const simulated = result.simulated ? ' SIMULATED' : '';
  out.push(
    `verdict: ${result.ok ? 'PASS' : 'FAIL'}${simulated} (${result.receipts} receipts, ${result.attestations} attestations, ${failed} failed lines)\n`,
  );
  if (result.simulated)
    out.push(
      'SIMULATED: quotes not signed by Intel TDX hardware back these receipts; they prove nothing about a TEE\n',
    );
  for (const item of result.notChecked) out.push(`not checked: ${item}\n`);
  return out.join('');
};
