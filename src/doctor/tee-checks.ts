import { stat } from 'node:fs/promises';
import { equalBytes, toHex } from '../bytes/index.js';
import { runWithDeadline } from '../concurrency/index.js';
import { koffiLoader, lazyRequire } from '../lazy/index.js';
import { selectQuoteProvider } from '../server/index.js';
import { checkRuntimeData } from '../tapp/index.js';
import {
  type Collateral,
  loadCollateral,
  parseQuote,
  type QuoteProvider,
  QuoteVerificationError,
  type TeePlatform,
  verifyQuote,
} from '../tdx/index.js';
import { type CheckOutcome, type DoctorCheck, fail, pass, skip, warn } from './check.js';
import type { DoctorContext } from './context.js';
import { describeError, showUrl } from './describe-error.js';

/** koffi (a native addon) only to see whether libtdx_attest can be loaded at all. */
const ffi = koffiLoader();
const dcap = lazyRequire<typeof import('@phala/dcap-qvl')>('@phala/dcap-qvl');

/** What is visible of each way to get a quote (docs/platforms.md, "Getting a TDX quote"). */
export interface TeeProbes {
  dstack: boolean;
  configfsTsm: boolean;
  tdxGuest: boolean;
  libtdx: boolean;
  /** Tapp's unix socket exists, or a TCP endpoint is configured (not probed). */
  tapp: boolean | 'tcp';
}

const exists = async (path: string, kind?: 'dir'): Promise<boolean> => {
  try {
    const s = await stat(path);
    return kind === 'dir' ? s.isDirectory() : true;
  } catch {
    return false;
  }
};

/**
 * dlopen only, no call. The handle is not unloaded: koffi may hand the same handle to the provider
 * that loads this library next, and unloading it would reset the library under it.
 */
const loadable = (path: string): boolean => {
  try {
    ffi().load(path);
    return true;
  } catch {
    return false;
  }
};

const tappSocket = (endpoint: string): string | undefined =>
  endpoint.startsWith('unix://') ? endpoint.slice('unix://'.length) : undefined;

export const probeTee = async (ctx: DoctorContext): Promise<TeeProbes> => {
  const { config, deps } = ctx;
  const socket = tappSocket(config.TAPP_ENDPOINT);
  return {
    dstack: await exists(config.DSTACK_SOCKET),
    configfsTsm: await exists(config.TSM_REPORT_ROOT, 'dir'),
    tdxGuest: await exists(deps.tdxGuestDevice),
    libtdx: loadable(config.LIBTDX_ATTEST_PATH),
    tapp: socket === undefined ? 'tcp' : await exists(socket),
  };
};

const yesNo = (b: boolean) => (b ? 'yes' : 'no');

const PLATFORM_HINTS: Record<TeePlatform, string> = {
  dstack:
    'the Dstack guest agent failed: check it answers (curl --unix-socket /var/run/dstack.sock http://localhost/Info) and that the app runs on a Dstack CVM ≥ 0.5',
  'configfs-tsm':
    'configfs-tsm needs root (user "0:0"), configfs mounted in the container, and a working QGS on the host (quotes are signed there)',
  libtdx:
    'libtdx_attest reaches the host QGS over vsock: check /etc/tdx-attest.conf (port=4050) and that the QGS runs on the host',
  tapp: 'check TAPP_APP_ID is the app id given to start-app and that /run/tapp/tapp.sock is mounted',
  simulated: 'set TEE_PROVIDER to the platform tee.present found',
};

const NO_TEE_HINT =
  'run inside an Intel TDX CVM and make its interface visible to the container: Dstack mounts /var/run/dstack.sock, 0G Tapp /run/tapp/tapp.sock, a plain TDX guest needs Linux ≥ 6.7 with configfs (/sys/kernel/config) mounted and root';

/**
 * `tee.present`, `tee.provider`, `tee.quote`, `tee.verify`: which TEE interfaces this machine
 * shows, which provider the configuration gets (for `auto`: the one serve would take, and why), a
 * real quote for random report_data, and DCAP verification of that quote.
 */
export const teeChecks = (ctx: DoctorContext): DoctorCheck[] => {
  const { config, deps, state } = ctx;
  let probes: Promise<TeeProbes> | undefined;
  const probe = () => {
    probes ??= probeTee(ctx);
    return probes;
  };

  const present: DoctorCheck = {
    id: 'tee.present',
    timeoutMs: ctx.timeout('tee.present', 5000),
    failHint: NO_TEE_HINT,
    async run() {
      const p = await probe();
      const tapp = p.tapp === 'tcp' ? `tcp ${config.TAPP_ENDPOINT} (not probed)` : yesNo(p.tapp);
      const detail =
        `dstack socket ${config.DSTACK_SOCKET}: ${yesNo(p.dstack)}; ` +
        `configfs-tsm ${config.TSM_REPORT_ROOT}: ${yesNo(p.configfsTsm)}; ` +
        `${deps.tdxGuestDevice}: ${yesNo(p.tdxGuest)}; ` +
        `${config.LIBTDX_ATTEST_PATH}: ${p.libtdx ? 'loads' : 'not found'}; ` +
        `tapp ${config.TAPP_ENDPOINT}: ${tapp}`;
      // libtdx_attest asks the kernel for the TD report through /dev/tdx_guest: one without the other is no quote.
      if (p.dstack || p.configfsTsm || (p.libtdx && p.tdxGuest) || p.tapp === true) return pass(detail);
      if (p.libtdx) {
        return fail(
          `${detail}: libtdx_attest without ${deps.tdxGuestDevice}`,
          'libtdx_attest needs the TDX guest device: this is not a TDX guest, or the device is not passed into the container',
        );
      }
      if (p.tdxGuest) {
        return fail(
          `${detail}: a TDX guest without a quote interface`,
          '/dev/tdx_guest alone gives no quote: mount configfs (Linux ≥ 6.7) or install Intel DCAP libtdx-attest',
        );
      }
      return fail(`no TEE interface found (${detail})`, NO_TEE_HINT);
    },
  };

  const why = async (platform: TeePlatform): Promise<string> => {
    const p = await probe();
    switch (platform) {
      case 'dstack':
        return `${config.DSTACK_SOCKET} exists (checked first)`;
      case 'configfs-tsm':
        return `no dstack socket; ${config.TSM_REPORT_ROOT} exists`;
      case 'libtdx':
        return `no dstack socket, no configfs-tsm; ${config.LIBTDX_ATTEST_PATH} produced a quote${p.tdxGuest ? '' : ` (but ${deps.tdxGuestDevice} is missing)`}`;
      default:
        return 'none of dstack socket, configfs-tsm, libtdx_attest works';
    }
  };

  const provider: DoctorCheck = {
    id: 'tee.provider',
    timeoutMs: ctx.timeout('tee.provider', config.ATTESTATION_TIMEOUT_MS),
    failHint: PLATFORM_HINTS.libtdx,
    async run() {
      const p = await probe();
      if (config.TEE_PROVIDER === 'simulated') {
        state.quotesUnavailable = 'TEE_PROVIDER=simulated';
        return fail(
          'TEE_PROVIDER=simulated: every report says "simulated" and every verifier rejects it',
          'set TEE_PROVIDER=auto (dstack → configfs-tsm → libtdx) or tapp on 0G Tapp',
        );
      }
      let quotes: QuoteProvider;
      try {
        quotes = await selectQuoteProvider(
          config,
          deps.logger,
          deps.configfsFs === undefined ? {} : { configfsFs: deps.configfsFs },
        );
      } catch (error) {
        state.quotesUnavailable = 'see tee.provider';
        const tapp =
          p.tapp === true && config.TEE_PROVIDER === 'auto'
            ? 'a Tapp socket exists, but auto never picks Tapp: set TEE_PROVIDER=tapp and TAPP_APP_ID'
            : NO_TEE_HINT;
        return fail(describeError(error), tapp);
      }
      if (quotes.close !== undefined) state.closers.push(() => quotes.close?.() ?? Promise.resolve());
      // A simulated fallback gives no quote worth taking: the quote checks skip.
      if (!quotes.simulated) state.quotes = quotes;
      if (config.TEE_PROVIDER === 'auto') {
        if (quotes.simulated) {
          state.quotesUnavailable = 'simulated fallback';
          return fail(
            'TEE_PROVIDER=auto found no TEE and fell back to SIMULATED (TEE_AUTO_ALLOW_SIMULATED=true)',
            `${NO_TEE_HINT}; never set TEE_AUTO_ALLOW_SIMULATED=true in production`,
          );
        }
        return pass(`TEE_PROVIDER=auto picks ${quotes.platform}: ${await why(quotes.platform)}`);
      }
      const missing =
        (config.TEE_PROVIDER === 'dstack' && !p.dstack) ||
        (config.TEE_PROVIDER === 'configfs-tsm' && !p.configfsTsm) ||
        (config.TEE_PROVIDER === 'libtdx' && !p.libtdx) ||
        (config.TEE_PROVIDER === 'tapp' && p.tapp === false);
      if (missing) {
        return fail(
          `TEE_PROVIDER=${config.TEE_PROVIDER} is configured, but its interface is not visible (see tee.present)`,
          PLATFORM_HINTS[quotes.platform],
        );
      }
      return pass(`TEE_PROVIDER=${config.TEE_PROVIDER} (configured)`);
    },
  };

  const quote: DoctorCheck = {
    id: 'tee.quote',
    timeoutMs: ctx.timeout('tee.quote', config.ATTESTATION_TIMEOUT_MS),
    failHint: 'the quote device or service did not answer: see the hint of tee.provider for this platform',
    async run(signal) {
      const quotes = state.quotes;
      if (quotes === undefined)
        return skip(`no quote provider (${state.quotesUnavailable ?? 'see tee.provider'})`);
      const reportData = deps.random(64);
      let result: Awaited<ReturnType<QuoteProvider['getQuote']>>;
      try {
        result = await quotes.getQuote(reportData, signal);
      } catch (error) {
        return fail(`${quotes.platform}: ${describeError(error)}`, PLATFORM_HINTS[quotes.platform]);
      }
      return checkQuote(quotes.platform, result, reportData, ctx);
    },
  };

  const verify: DoctorCheck = {
    id: 'tee.verify',
    timeoutMs: ctx.timeout('tee.verify', VERIFY_TIMEOUT_MS),
    failHint: 'collateral could not be fetched in time: give --pccs-url <your PCCS> or --collateral <file>',
    run: () => verifyOurQuote(ctx),
  };

  return [present, provider, quote, verify];
};

const checkQuote = (
  platform: TeePlatform,
  result: Awaited<ReturnType<QuoteProvider['getQuote']>>,
  reportData: Uint8Array,
  ctx: DoctorContext,
): CheckOutcome => {
  let parsed: ReturnType<typeof parseQuote>;
  try {
    parsed = parseQuote(result.quote);
  } catch (error) {
    return fail(
      `${platform} returned bytes that are not a TDX quote: ${describeError(error)}`,
      PLATFORM_HINTS[platform],
    );
  }
  let binding: string;
  if (result.reportDataScheme === 'raw') {
    if (!equalBytes(parsed.report.reportData, reportData)) {
      return fail(`${platform}: the quote's report_data is not the one asked for`, PLATFORM_HINTS[platform]);
    }
    binding = 'report_data = ours';
  } else {
    const runtime = result.extra?.['runtime_data'];
    try {
      if (typeof runtime !== 'string') throw new Error('no runtime_data');
      checkRuntimeData({
        runtimeData: new TextEncoder().encode(runtime),
        quoteReportData: parsed.report.reportData,
        nonce: reportData,
      });
    } catch (error) {
      return fail(
        `${platform}: report_data binding broken: ${describeError(error)}`,
        PLATFORM_HINTS[platform],
      );
    }
    binding = 'report_data = sha512(runtime_data) carrying ours';
  }
  ctx.state.quote = { result, reportData };
  const attributes = toHex(parsed.report.tdAttributes);
  const seen = `${platform}: quote v${parsed.header.version} (${result.quote.length} B), ${binding}, TD_ATTRIBUTES ${attributes}`;
  if (parsed.report.debug) {
    return fail(
      `${seen}: DEBUG bit set`,
      'the TD runs in debug mode (the host can read its memory): launch the CVM without debug',
    );
  }
  return pass(`${seen} (debug off), MRTD ${toHex(parsed.report.mrTd).slice(0, 16)}…`);
};

const VERIFY_TIMEOUT_MS = 30_000;

const ACCEPTABLE_HINT =
  'verifiers accept only UpToDate unless told otherwise (teeml-sidecar verify --accept-tcb): update the host BIOS/TDX module, or tell verifiers what to accept';

const verifyOurQuote = async (ctx: DoctorContext): Promise<CheckOutcome> => {
  const { inputs, deps, state } = ctx;
  if (state.quote === undefined) return skip('no quote to verify (see tee.quote)');
  const quote = state.quote.result.quote;
  let collateral: Collateral;
  let source: string;
  if (inputs.collateralPath !== undefined) {
    source = `collateral file ${inputs.collateralPath}`;
    try {
      collateral = await loadCollateral(inputs.collateralPath, async (p) =>
        new TextDecoder().decode(await deps.readFile(p)),
      );
    } catch (error) {
      return fail(
        `${source}: ${describeError(error)}`,
        'give a dcap-qvl Collateral JSON file (as getCollateral writes it)',
      );
    }
  } else {
    const url = inputs.pccsUrl ?? dcap().INTEL_PCS_URL;
    source = `collateral from ${showUrl(url)}`;
    try {
      // Its own, shorter deadline: a PCS that does not answer is a warning, not a failed check.
      const ms = Math.max(500, ctx.timeout('tee.verify', VERIFY_TIMEOUT_MS) - 2000);
      collateral = await runWithDeadline(() => deps.getCollateral(url, quote), {
        timeoutMs: ms,
        timeoutError: () => new Error(`no answer within ${ms} ms`),
      });
    } catch (error) {
      return warn(
        `${source} not reachable: ${describeError(error)}; quote not verified, TCB status unknown`,
        'give --pccs-url <a PCCS this machine reaches> or --collateral <file>; verifiers fetch collateral themselves',
      );
    }
  }
  const nowSecs = Math.floor(deps.now().getTime() / 1000);
  try {
    const verified = verifyQuote(quote, collateral, nowSecs);
    const advisories = verified.advisoryIds.length > 0 ? ` (${verified.advisoryIds.join(', ')})` : '';
    const seen = `dcap-qvl verified the quote with ${source}: TCB ${verified.status}${advisories}`;
    if (verified.status === 'UpToDate') return pass(seen);
    if (verified.status === 'Revoked')
      return fail(seen, 'this platform TCB is revoked: no verifier accepts it');
    return warn(seen, ACCEPTABLE_HINT);
  } catch (error) {
    const reason = error instanceof QuoteVerificationError ? error.reason : describeError(error);
    return fail(
      `dcap-qvl rejected the quote with ${source}: ${reason}`,
      'every verifier rejects a quote that does not verify: check the host TDX setup (platform registered with the PCCS) and the collateral',
    );
  }
};
