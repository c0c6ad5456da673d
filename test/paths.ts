import { fileURLToPath } from 'node:url';

/** Real captured fixtures live beside the checkout and are never copied in (README of shared/). */
export const sharedFixtures = (relative: string): string =>
  fileURLToPath(new URL(`../../shared/attestation-fixtures/${relative}`, import.meta.url));

/** Fixtures the project generates itself. */
export const ownFixtures = (relative: string): string =>
  fileURLToPath(new URL(`../attestation-fixtures/${relative}`, import.meta.url));

/** A compiled C test double (built by test/global-setup.ts). */
export const nativeDouble = (name: string): string =>
  fileURLToPath(new URL(`../native/build/${name}`, import.meta.url));
