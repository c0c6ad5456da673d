import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { envSchema, loadConfig } from '../../src/config/index.js';
import { repoFile } from './dockerfile-parser.js';

interface Device {
  driver?: string;
  count?: string | number;
  capabilities?: string[];
}
interface Service {
  image?: string;
  command?: string[];
  environment?: string[] | Record<string, string>;
  volumes?: string[];
  ports?: string[];
  expose?: string[];
  user?: string;
  group_add?: string[];
  healthcheck?: { test?: string[] };
  restart?: string;
  logging?: { driver?: string; options?: Record<string, string> };
  deploy?: { resources?: { reservations?: { devices?: Device[] } } };
}
interface Compose {
  services: Record<string, Service>;
}

const DIGEST_PINNED = /^[a-z0-9][a-z0-9._\-/:]*@sha256:[0-9a-f]{64}$/;
/** A whole value that is one compose reference: ${NAME}, ${NAME:-default}, ${NAME:?message}. */
const REFERENCE = /^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}$/;
/** Names that carry secrets (KEY_SOURCE, DSTACK_KEY_PATH name a mechanism, not a secret). */
const SECRET_NAME = /(TOKEN|API_KEY|SECRET|PASSWORD|PRIVATE_KEY)$/;

const environment = (service: Service): Map<string, string> => {
  const env = service.environment ?? [];
  const pairs = Array.isArray(env)
    ? env.map((entry) => {
        const eq = entry.indexOf('=');
        return [entry.slice(0, eq), entry.slice(eq + 1)] as const;
      })
    : Object.entries(env);
  return new Map(pairs);
};

const gpuDevices = (service: Service): Device[] => service.deploy?.resources?.reservations?.devices ?? [];

const platforms = [
  {
    file: 'dstack-compose.yml',
    socket: '/var/run/dstack.sock:/var/run/dstack.sock',
    env: {
      TEE_PROVIDER: 'dstack',
      KEY_SOURCE: 'dstack',
      GPU_EVIDENCE: 'nvml',
      UPSTREAM_URL: 'http://vllm:8000',
      TLS_KEY_SOURCE: 'dstack',
    },
  },
  {
    file: 'deploy/tapp/compose.yml',
    socket: '/run/tapp/tapp.sock:/run/tapp/tapp.sock',
    env: {
      TEE_PROVIDER: 'tapp',
      KEY_SOURCE: 'tapp',
      GPU_EVIDENCE: 'nvml',
      UPSTREAM_URL: 'http://vllm:8000',
      TLS_KEY_SOURCE: 'tapp',
    },
  },
] as const;

describe.each(platforms)('$file', ({ file, socket, env }) => {
  const text = readFileSync(repoFile(file), 'utf8');
  const compose = parse(text) as Compose;
  const services = Object.entries(compose.services);
  const sidecar = compose.services['sidecar'] as Service;
  const vllm = compose.services['vllm'] as Service;

  it('has exactly the vllm and sidecar services', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['sidecar', 'vllm']);
  });

  it('pins every image by digest (no latest, no bare tag)', () => {
    for (const [name, service] of services) {
      expect(service.image, name).toMatch(DIGEST_PINNED);
      expect(service.image).not.toMatch(/:latest(@|$)/);
    }
  });

  it('publishes only the sidecar port; vLLM is internal', () => {
    expect(sidecar.ports).toEqual(['8088:8088']);
    expect(vllm.ports).toBeUndefined();
    expect(vllm.expose).toEqual(['8000']);
    for (const [name, service] of services)
      if (name !== 'sidecar') expect(service.ports, name).toBeUndefined();
  });

  it('mounts the platform socket into the sidecar', () => {
    expect(sidecar.volumes).toContain(socket);
  });

  it('reserves the NVIDIA GPUs for vLLM, and NVML (utility) for the sidecar', () => {
    const [gpu] = gpuDevices(vllm);
    expect(gpu).toMatchObject({ driver: 'nvidia', count: 'all' });
    expect(gpu?.capabilities).toContain('gpu');
    const [nvml] = gpuDevices(sidecar);
    expect(nvml).toMatchObject({ driver: 'nvidia', count: 'all' });
    expect(nvml?.capabilities).toEqual(expect.arrayContaining(['gpu', 'utility']));
  });

  it('sets only environment variables the sidecar accepts (envSchema)', () => {
    const names = [...environment(sidecar).keys()];
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(Object.keys(envSchema.shape), name).toContain(name);
  });

  it('configures the platform providers and the vLLM upstream', () => {
    const vars = environment(sidecar);
    for (const [name, value] of Object.entries(env)) expect(vars.get(name), name).toBe(value);
  });

  it('is a configuration loadConfig accepts once the references are filled in', () => {
    const filled = Object.fromEntries(
      [...environment(sidecar)].map(([k, v]) => [k, REFERENCE.test(v) ? 'x'.repeat(32) : v]),
    );
    const config = loadConfig(filled);
    expect(config.TEE_PROVIDER).toBe(env.TEE_PROVIDER);
    expect(config.demoUpstream).toBe(false);
    // Attested TLS: the sidecar terminates HTTPS with the platform's key.
    expect(config.tlsMode).toBe(env.TLS_KEY_SOURCE);
  });

  it('holds no secret in plain text: tokens and keys are compose references only', () => {
    for (const [name, service] of services) {
      for (const [key, value] of environment(service)) {
        if (SECRET_NAME.test(key)) expect(value, `${name}.${key}`).toMatch(REFERENCE);
      }
    }
    // No long hex or base64 blobs anywhere except the image digests.
    const withoutDigests = text.replace(/@sha256:[0-9a-f]{64}/g, '');
    expect(withoutDigests).not.toMatch(/\b(0x)?[0-9a-fA-F]{40,}\b/);
  });

  it('limits logs, restarts on failure and health-checks every service', () => {
    for (const [name, service] of services) {
      expect(service.logging?.driver, name).toBe('json-file');
      expect(service.logging?.options?.['max-size'], name).toMatch(/^\d+[km]$/);
      expect(service.logging?.options?.['max-file'], name).toMatch(/^\d+$/);
      expect(service.restart, name).toBe('unless-stopped');
      expect(service.healthcheck?.test?.[0], name).toBe('CMD');
    }
    expect(sidecar.healthcheck?.test?.join(' ')).toContain('/health');
    // The sidecar serves HTTPS, so its own health check speaks it too.
    expect(sidecar.healthcheck?.test?.join(' ')).toContain("require('https')");
  });

  it('names the served model to the sidecar (MODEL_NAME = --served-model-name) and salts the cache per user', () => {
    const command = vllm.command ?? [];
    const vars = environment(sidecar);
    expect(vars.get('MODEL_NAME')).toBe(command[command.indexOf('--served-model-name') + 1]);
    expect(vars.get('CACHE_SALT')).toBe('per-user');
    expect(['hashes', 'model']).toContain(vars.get('SIGNED_TEXT_FORMAT'));
  });

  it('serves the model the 0G broker config names', () => {
    const broker = parse(readFileSync(repoFile('deploy/0g-broker/config.example.yaml'), 'utf8')) as {
      service: { model: string };
    };
    const command = vllm.command ?? [];
    expect(command[command.indexOf('--served-model-name') + 1]).toBe(broker.service.model);
  });
});

describe('platform specifics', () => {
  it('dstack: the sidecar runs without capabilities, since it must run as uid 0 for the agent socket', () => {
    const sidecar = (parse(readFileSync(repoFile('dstack-compose.yml'), 'utf8')) as Compose).services[
      'sidecar'
    ];
    expect(sidecar?.user).toBe('0:0');
    expect(sidecar).toMatchObject({
      cap_drop: ['ALL'],
      read_only: true,
      security_opt: ['no-new-privileges:true'],
    });
  });

  it('tapp: non-root user with group 0 for the 0660 socket, and an app id', () => {
    const sidecar = (parse(readFileSync(repoFile('deploy/tapp/compose.yml'), 'utf8')) as Compose).services[
      'sidecar'
    ] as Service;
    expect(sidecar.user).toBeUndefined();
    expect(sidecar.group_add).toEqual(['0']);
    expect(environment(sidecar).get('TAPP_APP_ID')).toMatch(/^[a-z0-9-]+$/);
    expect(environment(sidecar).get('TAPP_ENDPOINT')).toBe('unix:///run/tapp/tapp.sock');
  });
});

describe('deploy/0g-broker/config.example.yaml', () => {
  const config = parse(readFileSync(repoFile('deploy/0g-broker/config.example.yaml'), 'utf8')) as {
    network: { privateKeys: string[] };
    service: Record<string, unknown>;
  };

  it('points a TeeML service at the sidecar with targetSeparated and targetTeeAddress', () => {
    expect(config.service).toMatchObject({ verifiability: 'TeeML', targetSeparated: true, type: 'chatbot' });
    expect(config.service['targetTeeAddress']).toEqual(expect.any(String));
    // HTTPS: deploy/tapp/compose.yml terminates TLS in the sidecar (TLS_KEY_SOURCE=tapp).
    expect(config.service['targetUrl']).toMatch(/^https:\/\/<sidecar-host>:8088(\/v1)?$/);
    expect(config.service['servingUrl']).toEqual(expect.any(String));
  });

  it('contains placeholders, never a real private key', () => {
    expect(config.network.privateKeys.length).toBeGreaterThan(0);
    for (const key of config.network.privateKeys) expect(key).toMatch(/^<.*>$/);
  });
});
