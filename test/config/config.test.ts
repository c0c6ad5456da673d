import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';

/**
 * Every cross-field rule of the configuration (src/config/config.ts), each from both sides: the
 * combination that must be refused, and the nearest one that must be accepted.
 */
const refused = (env: Record<string, string>, variable: string) => {
  expect(() => loadConfig(env)).toThrow(ConfigError);
  expect(() => loadConfig(env)).toThrow(new RegExp(`${variable}: `));
};

describe('configuration cross-field rules', () => {
  it('GPU_EVIDENCE=http needs GPU_EVIDENCE_URL', () => {
    refused({ GPU_EVIDENCE: 'http' }, 'GPU_EVIDENCE_URL');
    expect(loadConfig({ GPU_EVIDENCE: 'http', GPU_EVIDENCE_URL: 'http://127.0.0.1:1' }).GPU_EVIDENCE).toBe(
      'http',
    );
  });

  it('GPU_EVIDENCE=fixture needs GPU_FIXTURE_PATH', () => {
    refused({ GPU_EVIDENCE: 'fixture' }, 'GPU_FIXTURE_PATH');
    expect(loadConfig({ GPU_EVIDENCE: 'fixture', GPU_FIXTURE_PATH: '/tmp/x.json' }).GPU_FIXTURE_PATH).toBe(
      '/tmp/x.json',
    );
  });

  it('simulated GPU evidence never goes with a real TEE provider (auto and simulated may)', () => {
    for (const tee of ['dstack', 'configfs-tsm', 'libtdx']) refused({ TEE_PROVIDER: tee }, 'GPU_EVIDENCE');
    refused({ TEE_PROVIDER: 'tapp', TAPP_APP_ID: 'app' }, 'GPU_EVIDENCE');
    expect(loadConfig({ TEE_PROVIDER: 'dstack', GPU_EVIDENCE: 'none' }).TEE_PROVIDER).toBe('dstack');
    expect(loadConfig({ TEE_PROVIDER: 'auto' }).GPU_EVIDENCE).toBe('simulated');
  });

  it('TEE_PROVIDER=tapp and KEY_SOURCE=tapp each need TAPP_APP_ID', () => {
    refused({ TEE_PROVIDER: 'tapp', GPU_EVIDENCE: 'none' }, 'TAPP_APP_ID');
    refused({ KEY_SOURCE: 'tapp' }, 'TAPP_APP_ID');
    expect(loadConfig({ KEY_SOURCE: 'tapp', TAPP_APP_ID: 'app' }).KEY_SOURCE).toBe('tapp');
    expect(loadConfig({ TEE_PROVIDER: 'tapp', GPU_EVIDENCE: 'none', TAPP_APP_ID: 'app' }).TAPP_APP_ID).toBe(
      'app',
    );
  });

  it('SIGNED_TEXT_FORMAT=model needs MODEL_NAME, and names without ":" (NEAR splits the text on it)', () => {
    refused({ SIGNED_TEXT_FORMAT: 'model' }, 'MODEL_NAME');
    refused({ SIGNED_TEXT_FORMAT: 'model', MODEL_NAME: 'qwen3:8b' }, 'MODEL_NAME');
    refused({ MODEL_NAME: ' , ' }, 'MODEL_NAME');
    refused({ MODEL_NAME: 'two words' }, 'MODEL_NAME');
    refused({ SIGNED_TEXT_FORMAT: 'both' }, 'SIGNED_TEXT_FORMAT');
    refused({ CACHE_SALT: 'on' }, 'CACHE_SALT');
    const cfg = loadConfig({ SIGNED_TEXT_FORMAT: 'model', MODEL_NAME: 'org/model-a, model-b' });
    expect(cfg.MODEL_NAME).toEqual(['org/model-a', 'model-b']);
    expect(loadConfig({ MODEL_NAME: 'qwen3:8b' }).SIGNED_TEXT_FORMAT).toBe('hashes');
    const defaults = loadConfig({});
    expect([defaults.MODEL_NAME, defaults.SIGNED_TEXT_FORMAT, defaults.CACHE_SALT]).toEqual([
      undefined,
      'hashes',
      'off',
    ]);
  });

  it('names a bad variable, never its value', () => {
    const secret = 'short';
    try {
      loadConfig({ AUTH_TOKEN: secret, PORT: 'nope' });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toMatch(/AUTH_TOKEN: /);
      expect((err as Error).message).toMatch(/PORT: /);
      expect((err as Error).message).not.toContain(secret);
    }
  });
});
