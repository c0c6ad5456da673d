/**
 * A source of Intel TDX quotes. One file per implementation (dstack, configfs-tsm, libtdx, tapp,
 * simulated), chosen explicitly by configuration (docs/architecture.md): there is no silent fallback from a
 * real TEE to the simulated one.
 */
export type TeePlatform = 'dstack' | 'configfs-tsm' | 'libtdx' | 'tapp' | 'simulated';

/**
 * How the 64 bytes we asked for reach the quote's report_data field.
 * - `raw`: report_data is exactly our 64 bytes (dstack, configfs-tsm, libtdx, simulated).
 * - `tapp-runtime-data-sha512`: 0G Tapp sets report_data = sha512(runtime_data) and our 64 bytes
 *   travel as hex in runtime_data's `nonce` field (docs/platforms.md, 0G Tapp).
 */
export type ReportDataScheme = 'raw' | 'tapp-runtime-data-sha512';

export interface QuoteResult {
  /** The raw quote bytes exactly as the platform produced them. */
  quote: Uint8Array;
  /** The platform event log (dstack: list of {imr,event_type,digest,event,event_payload}); [] when none. */
  eventLog: unknown[];
  /** Platform info (dstack /Info, tapp app info); {} when none. */
  info: Record<string, unknown>;
  reportDataScheme: ReportDataScheme;
  /** Extra report fields a verifier needs for this scheme (tapp: `runtime_data`). */
  extra?: Record<string, unknown>;
}

export interface QuoteProvider {
  readonly platform: TeePlatform;
  /** True only for the simulated provider; every report it backs says so. */
  readonly simulated: boolean;
  /** `reportData` is exactly 64 bytes. Rejects with a SidecarError (503) when the TEE fails. */
  getQuote(reportData: Uint8Array, signal?: AbortSignal): Promise<QuoteResult>;
  close?(): Promise<void>;
}
