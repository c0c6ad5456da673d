import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_APP_COMPOSE,
  DEFAULT_COMPOSE_YAML,
  generateAppCompose,
  mrConfigIdFor,
  referencedEnvNames,
  serializeAppCompose,
} from '../../scripts/compose-hash.js';
import { composeHash } from '../../src/dstack/index.js';
import { parseQuote } from '../../src/tdx/index.js';
import { sharedFixtures } from '../paths.js';
import { repoFile } from './dockerfile-parser.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

interface Info {
  compose_hash: string;
  tcb_info: {
    app_compose: string;
    compose_hash: string;
    event_log: { event: string; event_payload: string }[];
  };
}
const info = JSON.parse(
  readFileSync(sharedFixtures('dstack/nearai-sample/SAMPLE_DSTACK_INFO.json'), 'utf8'),
) as Info;
const sampleQuote = JSON.parse(
  readFileSync(sharedFixtures('dstack/nearai-sample/SAMPLE_DSTACK_QUOTE.json'), 'utf8'),
) as { quote: string; event_log: string };
const appCompose = info.tcb_info.app_compose;

describe('compose hash of the real Dstack sample', () => {
  const hash = composeHash(appCompose);

  it('sha256 of the app_compose bytes is the compose_hash /Info reports', () => {
    expect(hex(hash)).toBe(info.compose_hash);
    expect(hex(hash)).toBe(info.tcb_info.compose_hash);
  });

  it('equals the compose-hash event in the RTMR3 event log', () => {
    const events = JSON.parse(sampleQuote.event_log) as { event: string; event_payload: string }[];
    expect(events.find((e) => e.event === 'compose-hash')?.event_payload).toBe(hex(hash));
  });

  it('gives the MRCONFIGID of the quote: 0x01 ‖ compose_hash ‖ zeros', () => {
    const quote = parseQuote(new Uint8Array(Buffer.from(sampleQuote.quote, 'hex')));
    expect(hex(mrConfigIdFor(hash))).toBe(hex(quote.report.mrConfigId));
  });

  it('the generator reproduces the sample byte for byte from its parsed JSON (same layout)', () => {
    expect(serializeAppCompose(JSON.parse(appCompose))).toBe(appCompose);
  });

  it('the script prints the fixture hash for a file holding the sample bytes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'compose-hash-'));
    try {
      const file = join(dir, 'app-compose.json');
      writeFileSync(file, appCompose);
      const out = execFileSync(
        repoFile('node_modules/.bin/tsx'),
        [repoFile('scripts/compose-hash.ts'), file],
        {
          encoding: 'utf8',
        },
      );
      expect(out).toBe(
        `compose_hash ${info.compose_hash}\nmrconfigid   01${info.compose_hash}${'00'.repeat(15)}\n`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/dstack/app-compose.json', () => {
  const committed = readFileSync(DEFAULT_APP_COMPOSE, 'utf8');
  const composeYaml = readFileSync(DEFAULT_COMPOSE_YAML, 'utf8');
  const parsed = JSON.parse(committed) as Record<string, unknown>;
  const tmp: string[] = [];
  afterAll(() => {
    for (const dir of tmp) rmSync(dir, { recursive: true, force: true });
  });

  it('is up to date with dstack-compose.yml (regenerate: npx tsx scripts/compose-hash.ts --generate)', () => {
    expect(committed).toBe(generateAppCompose(composeYaml));
  });

  it('wraps dstack-compose.yml exactly, as docker_compose_file', () => {
    expect(parsed['docker_compose_file']).toBe(composeYaml);
  });

  it('uses only field names a real app-compose.json has', () => {
    const known = Object.keys(JSON.parse(appCompose) as object);
    for (const key of Object.keys(parsed)) expect(known, key).toContain(key);
    expect(parsed).toMatchObject({ runner: 'docker-compose', manifest_version: 2, kms_enabled: true });
  });

  it('allows exactly the encrypted variables the compose references', () => {
    expect(parsed['allowed_envs']).toEqual(referencedEnvNames(composeYaml));
    expect(parsed['allowed_envs']).toEqual(['ADMIN_TOKEN', 'AUTH_TOKEN', 'HF_TOKEN', 'UPSTREAM_API_KEY']);
  });

  it('--generate writes the same bytes the committed file has', () => {
    const dir = mkdtempSync(join(tmpdir(), 'compose-gen-'));
    tmp.push(dir);
    const out = join(dir, 'app-compose.json');
    const stdout = execFileSync(
      repoFile('node_modules/.bin/tsx'),
      [repoFile('scripts/compose-hash.ts'), '--generate', DEFAULT_COMPOSE_YAML, '--out', out],
      { encoding: 'utf8' },
    );
    expect(readFileSync(out, 'utf8')).toBe(committed);
    expect(stdout).toContain(`compose_hash ${hex(composeHash(committed))}`);
  });
});

describe('referencedEnvNames', () => {
  it('finds plain, :- and :? references, but not $$-escaped ones or names in comment lines', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: compose references, not a template
    const yaml = '# ${COMMENTED}\nenv:\n  - A=${A}\n  - B=${B:-x}\n  - C=${C:?y}\n  - D=$${D}\n';
    expect(referencedEnvNames(yaml)).toEqual(['A', 'B', 'C']);
  });
});
