import { toHex } from '../bytes/index.js';
import { DstackClient, type DstackInfo, EventLogError, parseEventLog } from '../dstack/index.js';
import { unavailableIn } from '../errors/index.js';
import type { QuoteProvider, QuoteResult } from './quote-provider.js';
import { expectQuoteReportData } from './report-data.js';

const getQuoteFailed = unavailableIn('dstack GetQuote failed: ');

export interface DstackQuoteProviderOptions {
  /** Guest agent socket (config DSTACK_SOCKET, default DEFAULT_DSTACK_SOCKET). */
  socketPath: string;
  /** Deadline per guest agent call. */
  timeoutMs?: number;
  /** Injected client (tests); built from socketPath/timeoutMs when absent. */
  client?: DstackClient;
}

/**
 * Quotes from the Dstack guest agent (docs/platforms.md, Dstack row). report_data is used as given, so
 * the scheme is `raw`. The event log is parsed and validated (src/dstack/event-log.ts) and served as a
 * list; the quote's report_data is checked to be ours before it is returned; /Info is fetched once and cached after its first success (it does not change while the CVM
 * runs), while a failure is not cached so the next report retries.
 */
export class DstackQuoteProvider implements QuoteProvider {
  readonly platform = 'dstack' as const;
  readonly simulated = false;
  private readonly client: DstackClient;
  private info: DstackInfo | undefined;
  private infoInFlight: Promise<DstackInfo> | undefined;

  constructor(options: DstackQuoteProviderOptions) {
    this.client =
      options.client ??
      new DstackClient({
        socketPath: options.socketPath,
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      });
  }

  async getQuote(reportData: Uint8Array, signal?: AbortSignal): Promise<QuoteResult> {
    if (reportData.length !== 64) {
      throw new RangeError(`"reportData" expected Uint8Array of length 64, got length=${reportData.length}`);
    }
    const answer = await this.client.getQuote(reportData, signal);
    // Fail closed if the agent says it used other report_data than ours (it pads, never hashes).
    if (answer.report_data !== undefined && answer.report_data.toLowerCase() !== toHex(reportData)) {
      throw getQuoteFailed('the quote was made for other report_data', 'dstack_report_data_mismatch');
    }
    let eventLog: unknown[];
    try {
      eventLog = parseEventLog(answer.event_log);
    } catch (error) {
      const reason = error instanceof EventLogError ? error.message : 'event log is malformed';
      throw getQuoteFailed(reason, 'dstack_bad_response', {}, error);
    }
    const quote = new Uint8Array(Buffer.from(answer.quote, 'hex'));
    // And check the quote itself: a malformed quote or another report_data is 503, never served.
    expectQuoteReportData('dstack', quote, reportData);
    const info = await this.loadInfo(signal);
    const result: QuoteResult = {
      quote,
      eventLog,
      info: withParsedTcbInfo(info),
      reportDataScheme: 'raw',
    };
    if (answer.vm_config !== undefined) result.extra = { vm_config: answer.vm_config };
    return result;
  }

  private async loadInfo(signal?: AbortSignal): Promise<DstackInfo> {
    if (this.info !== undefined) return this.info;
    this.infoInFlight ??= this.client.info(signal).then(
      (info) => {
        this.info = info;
        this.infoInFlight = undefined;
        return info;
      },
      (error: unknown) => {
        this.infoInFlight = undefined;
        throw error;
      },
    );
    return this.infoInFlight;
  }
}

/**
 * The guest agent sends `tcb_info` as a JSON string; reports serve it parsed, as NEAR's production
 * reports do and as the 0G SDK's compose check expects (it reads `info.tcb_info.app_compose`). The
 * `app_compose` inside stays the exact string the agent gave: its bytes are what the compose hash
 * covers. A string that is not a JSON object is passed on as it came.
 */
const withParsedTcbInfo = (info: DstackInfo): Record<string, unknown> => {
  const tcb = info.tcb_info;
  if (typeof tcb !== 'string') return { ...info };
  try {
    const parsed: unknown = JSON.parse(tcb);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      return { ...info, tcb_info: parsed };
    }
  } catch {
    // not JSON: served as the agent sent it
  }
  return { ...info };
};
