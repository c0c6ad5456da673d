import { SidecarError, unavailableIn } from '../errors/index.js';
import {
  checkRuntimeData,
  EvidenceFormatError,
  parseTappEvidence,
  RuntimeDataError,
  TAPP_REPORT_DATA_SCHEME,
  TappClient,
} from '../tapp/index.js';
import { parseQuote, QuoteParseError } from './quote.js';
import type { QuoteProvider, QuoteResult } from './quote-provider.js';

export interface TappQuoteProviderOptions {
  /** Config TAPP_ENDPOINT: a `unix://` socket (default DEFAULT_TAPP_ENDPOINT) or `host:port`. */
  endpoint: string;
  /** Config TAPP_APP_ID: the app id this sidecar runs as inside Tapp. */
  appId: string;
  timeoutMs?: number;
  /** Injected client (tests). */
  client?: TappClient;
}

const bad = unavailableIn('tapp GetEvidence failed: ');

/**
 * Quotes from 0G Tapp (docs/platforms.md, 0G Tapp row). Tapp does not let an app set report_data: our 64
 * bytes go to GetEvidence as its `nonce`, Tapp writes them as hex into runtime_data and sets
 * report_data = sha512(runtime_data). So the scheme is `tapp-runtime-data-sha512`, and the report
 * carries `runtime_data` exactly as Tapp produced it, so a verifier recomputes
 * sha512(runtime_data) == the quote's report_data and finds our 64 bytes in its `nonce`.
 *
 * Both facts are checked here before the quote is returned (fail closed): a Tapp that predates the
 * nonce field (no runtime_data) or that answered for another nonce gives 503, never a report whose
 * binding does not hold.
 */
export class TappQuoteProvider implements QuoteProvider {
  readonly platform = 'tapp' as const;
  readonly simulated = false;
  private readonly client: TappClient;
  private readonly ownsClient: boolean;
  private readonly appId: string;

  constructor(options: TappQuoteProviderOptions) {
    if (options.appId === '') throw new RangeError('"appId" must not be empty');
    this.appId = options.appId;
    this.ownsClient = options.client === undefined;
    this.client =
      options.client ??
      new TappClient({
        endpoint: options.endpoint,
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      });
  }

  async getQuote(reportData: Uint8Array, signal?: AbortSignal): Promise<QuoteResult> {
    if (reportData.length !== 64) {
      throw new RangeError(`"reportData" expected Uint8Array of length 64, got length=${reportData.length}`);
    }
    const answer = await this.client.getEvidence(this.appId, reportData, signal);
    try {
      const evidence = parseTappEvidence(answer.evidence);
      if (evidence.runtimeData === undefined) {
        throw bad('evidence has no runtime_data (Tapp too old to bind a nonce)', 'tapp_no_runtime_data');
      }
      const runtime = checkRuntimeData({
        runtimeData: evidence.runtimeData,
        quoteReportData: parseQuote(evidence.quote).report.reportData,
        nonce: reportData,
      });
      const extra: Record<string, unknown> = {
        // A string with exactly the hashed bytes (checkRuntimeData proved they are UTF-8).
        runtime_data: new TextDecoder().decode(evidence.runtimeData),
        report_data_scheme: TAPP_REPORT_DATA_SCHEME,
        tapp_signer: runtime.signer,
      };
      if (evidence.ccEventlog !== undefined) extra['cc_eventlog'] = evidence.ccEventlog;
      return {
        quote: evidence.quote,
        eventLog: [],
        info: { app_id: this.appId, tee_type: answer.teeType, evidence_timestamp: answer.timestamp },
        reportDataScheme: 'tapp-runtime-data-sha512',
        extra,
      };
    } catch (error) {
      if (error instanceof SidecarError) throw error;
      if (error instanceof RuntimeDataError) throw bad(error.message, 'tapp_report_data_mismatch', {}, error);
      if (error instanceof EvidenceFormatError || error instanceof QuoteParseError) {
        throw bad(error.message, 'tapp_bad_response', {}, error);
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.client.close();
  }
}
