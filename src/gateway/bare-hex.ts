/** Hex as the gateway compares it: no `0x`, lower case (addresses, measurements, fingerprints). */
export const bareHex = (hex: string): string => hex.replace(/^0x/i, '').toLowerCase();
