import type { LibraryHandle } from 'koffi';
import { assertBytes } from '../bytes/index.js';
import { SerialQueue } from '../concurrency/index.js';
import { type SidecarError, unavailableIn } from '../errors/index.js';
import { FfiUnavailableError, koffiLoader } from '../lazy/index.js';
import type { QuoteProvider, QuoteResult } from './quote-provider.js';
import { expectQuoteReportData } from './report-data.js';

/** koffi (a native addon) is loaded only when an FFI provider is used. */
const ffi = koffiLoader();

/**
 * TDX quotes through Intel's `libtdx_attest.so.1` (DCAP `tdx_attest.h`; docs/platforms.md "Getting a
 * TDX quote"), for guests without configfs-tsm. Bound with koffi (docs/architecture.md: ffi-napi does not
 * build on Node 20+):
 *
 *   tdx_attest_error_t tdx_att_get_quote(const tdx_report_data_t *p_tdx_report_data, // 64 B
 *       const tdx_uuid_t att_key_id_list[], uint32_t list_size,                     // NULL, 0
 *       tdx_uuid_t *p_att_key_id,                                                    // out, 16 B
 *       uint8_t **pp_quote, uint32_t *p_quote_size, uint32_t flags);                 // flags 0
 *   tdx_attest_error_t tdx_att_free_quote(uint8_t *p_quote);
 *
 * The quote buffer belongs to the library: we copy it out and always hand it back with
 * tdx_att_free_quote. The call blocks for as long as the QGS takes (vsock round trip, often
 * hundreds of ms), so it runs on koffi's worker thread (`.async`), one call at a time.
 */

/** tdx_attest_error_t values (tdx_attest.h) and the error codes we report for them. */
export const TDX_ATTEST_ERRORS: Readonly<Record<number, { name: string; code: string }>> = {
  1: { name: 'TDX_ATTEST_ERROR_UNEXPECTED', code: 'tdx_attest_unexpected' },
  2: { name: 'TDX_ATTEST_ERROR_INVALID_PARAMETER', code: 'tdx_attest_invalid_parameter' },
  3: { name: 'TDX_ATTEST_ERROR_OUT_OF_MEMORY', code: 'tdx_attest_out_of_memory' },
  4: { name: 'TDX_ATTEST_ERROR_VSOCK_FAILURE', code: 'tdx_attest_vsock_failure' },
  5: { name: 'TDX_ATTEST_ERROR_REPORT_FAILURE', code: 'tdx_attest_report_failure' },
  6: { name: 'TDX_ATTEST_ERROR_EXTEND_FAILURE', code: 'tdx_attest_extend_failure' },
  7: { name: 'TDX_ATTEST_ERROR_NOT_SUPPORTED', code: 'tdx_attest_not_supported' },
  8: { name: 'TDX_ATTEST_ERROR_QUOTE_FAILURE', code: 'tdx_attest_quote_failure' },
  9: { name: 'TDX_ATTEST_ERROR_BUSY', code: 'tdx_attest_busy' },
  10: { name: 'TDX_ATTEST_ERROR_DEVICE_FAILURE', code: 'tdx_attest_device_failure' },
  11: { name: 'TDX_ATTEST_ERROR_INVALID_RTMR_INDEX', code: 'tdx_attest_invalid_rtmr_index' },
  12: { name: 'TDX_ATTEST_ERROR_UNSUPPORTED_ATT_KEY_ID', code: 'tdx_attest_unsupported_att_key_id' },
};

/** The dlopen name of Intel's library (the DCAP libtdx-attest package). */
export const DEFAULT_LIBTDX_ATTEST_PATH = 'libtdx_attest.so.1';
const PLATFORM = 'libtdx';
const unavailable = unavailableIn('TDX quote unavailable: ', { platform: PLATFORM });
/** Real quotes are ~5 KB; anything past this is a broken library, not a quote. */
const MAX_QUOTE_SIZE = 1 << 20;

type Func = ReturnType<LibraryHandle['func']>;
interface Binding {
  getQuote: Func;
  freeQuote: Func;
}

export interface LibTdxOptions {
  /** dlopen name or path of Intel's library (or the test double). */
  libraryPath?: string;
}

export const tdxAttestError = (rc: number): SidecarError => {
  const known = TDX_ATTEST_ERRORS[rc];
  const hex = `0x${rc.toString(16).padStart(4, '0')}`;
  return unavailable(
    `tdx_att_get_quote failed with ${known?.name ?? 'an unknown code'} (${hex})`,
    known?.code ?? 'tdx_attest_unknown_error',
    { rc, rcName: known?.name ?? null },
  );
};

const isNull = (ptr: unknown): boolean => ptr === null || ptr === undefined || ptr === 0n || ptr === 0;

export class LibTdxQuoteProvider implements QuoteProvider {
  readonly platform = 'libtdx' as const;
  readonly simulated = false;
  private readonly libraryPath: string;
  private binding: Binding | undefined;
  /** One native call at a time: the library talks to one QGS over one vsock and is not re-entrant. */
  private readonly queue = new SerialQueue();

  constructor(options: LibTdxOptions = {}) {
    this.libraryPath = options.libraryPath ?? DEFAULT_LIBTDX_ATTEST_PATH;
  }

  getQuote(reportData: Uint8Array, signal?: AbortSignal): Promise<QuoteResult> {
    assertBytes('reportData', reportData, 64);
    const input = reportData.slice();
    return this.queue.run(() => this.call(input, signal));
  }

  /** dlopen on first use, so configuring libtdx on a machine without it fails per request (503), not at import. */
  private bind(): Binding {
    if (this.binding !== undefined) return this.binding;
    let lib: LibraryHandle;
    try {
      lib = ffi().load(this.libraryPath);
    } catch (err) {
      if (err instanceof FfiUnavailableError) {
        throw unavailable(`TDX quote unavailable: ${err.message}`, 'ffi_unavailable', {}, err);
      }
      throw unavailable(
        `could not load ${this.libraryPath} (Intel DCAP libtdx-attest not installed?)`,
        'tee_unavailable',
        { library: this.libraryPath },
        err,
      );
    }
    try {
      this.binding = {
        // _Inout_ so our NULL goes in: on failure the library may leave *pp_quote untouched, and we
        // must be able to tell "no buffer" from garbage.
        getQuote: lib.func(
          'uint32_t tdx_att_get_quote(const uint8_t *p_tdx_report_data, const void *att_key_id_list, ' +
            'uint32_t list_size, uint8_t *p_att_key_id, _Inout_ void **pp_quote, ' +
            '_Inout_ uint32_t *p_quote_size, uint32_t flags)',
        ),
        freeQuote: lib.func('uint32_t tdx_att_free_quote(void *p_quote)'),
      };
    } catch (err) {
      throw unavailable(
        `${this.libraryPath} lacks tdx_att_get_quote/tdx_att_free_quote`,
        'tee_unavailable',
        {},
        err,
      );
    }
    return this.binding;
  }

  private async call(reportData: Uint8Array, signal?: AbortSignal): Promise<QuoteResult> {
    signal?.throwIfAborted();
    const binding = this.bind();
    const quotePtr: unknown[] = [null];
    const quoteSize: number[] = [0];
    const attKeyId = Buffer.alloc(16);
    const rd = Buffer.from(reportData);
    const rc = await new Promise<number>((resolve, reject) => {
      binding.getQuote.async(
        rd,
        null,
        0,
        attKeyId,
        quotePtr,
        quoteSize,
        0,
        (err: unknown, result: number) => {
          if (err) reject(unavailable('tdx_att_get_quote could not be called', 'tee_unavailable', {}, err));
          else resolve(result);
        },
      );
    });
    const ptr = quotePtr[0];
    const size = quoteSize[0] ?? 0;
    let quote: Uint8Array;
    try {
      if (rc !== 0) throw tdxAttestError(rc);
      if (isNull(ptr))
        throw unavailable('tdx_att_get_quote reported success without a quote', 'tee_unavailable', { rc });
      if (size === 0 || size > MAX_QUOTE_SIZE) {
        throw unavailable('tdx_att_get_quote returned an implausible quote size', 'tee_unavailable', {
          size,
        });
      }
      // Copy out of the library's buffer before freeing it.
      quote = new Uint8Array(ffi().view(ptr, size)).slice();
    } finally {
      if (!isNull(ptr)) binding.freeQuote(ptr);
    }
    expectQuoteReportData(PLATFORM, quote, reportData);
    return { quote, eventLog: [], info: {}, reportDataScheme: 'raw' };
  }
}
