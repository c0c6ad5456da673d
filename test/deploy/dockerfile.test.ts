import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { envSchema } from '../../src/config/index.js';
import { execForm, parseCopy, readDockerfile, repoFile } from './dockerfile-parser.js';

const DIGEST_PINNED = /^[a-z0-9][a-z0-9._\-/:]*@sha256:[0-9a-f]{64}$/;

describe('Dockerfile.tdx', () => {
  const stages = readDockerfile();
  const runtime = stages[stages.length - 1];
  const text = readFileSync(repoFile('Dockerfile.tdx'), 'utf8');
  const all = stages.flatMap((s) => s.instructions);

  it('is multi-stage: a build stage and a runtime stage', () => {
    expect(stages.map((s) => s.name)).toEqual(['build', 'runtime']);
  });

  it('pins every base image by digest (no tag-only, no latest, no ARG indirection)', () => {
    for (const stage of stages) {
      expect(stage.from, stage.from).toMatch(DIGEST_PINNED);
      expect(stage.from).not.toMatch(/:latest(@|$)/);
    }
  });

  it('installs from the lockfile without install scripts, then builds and prunes dev dependencies', () => {
    const build = stages[0]?.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args) ?? [];
    const ci = build.find((r) => r.includes('npm ci'));
    expect(ci).toBeDefined();
    expect(ci).toContain('--ignore-scripts');
    expect(build.some((r) => r.includes('npm run build'))).toBe(true);
    expect(build.some((r) => /npm prune --omit=dev/.test(r))).toBe(true);
    const copies = stages[0]?.instructions.filter((i) => i.keyword === 'COPY').map((i) => parseCopy(i.args));
    expect(copies?.[0]?.sources).toEqual(['package.json', 'package-lock.json']);
  });

  it('never pipes a download into a shell and never fetches anything in the runtime stage', () => {
    expect(text).not.toMatch(/(curl|wget)[^\n|]*\|\s*(ba|z)?sh/);
    for (const run of runtime?.instructions.filter((i) => i.keyword === 'RUN') ?? []) {
      expect(run.args).not.toMatch(/curl|wget|npm (ci|install)|apt-get/);
    }
  });

  it('runs as a non-root user', () => {
    const users = runtime?.instructions.filter((i) => i.keyword === 'USER').map((i) => i.args) ?? [];
    const last = users[users.length - 1];
    expect(last).toBeDefined();
    expect(last?.split(':')[0]).not.toMatch(/^(root|0)$/);
  });

  it('has a HEALTHCHECK that asks /health with node (slim images have no curl)', () => {
    const health = runtime?.instructions.find((i) => i.keyword === 'HEALTHCHECK');
    expect(health).toBeDefined();
    expect(health?.args).toMatch(/\sCMD \[/);
    const argv = execForm(health?.args ?? '');
    expect(argv.slice(0, 2)).toEqual(['node', '-e']);
    expect(argv[2]).toContain('/health');
    expect(health?.args).not.toMatch(/curl|wget/);
  });

  it('starts `teeml-sidecar serve` from dist/', () => {
    const entry = runtime?.instructions.find((i) => i.keyword === 'ENTRYPOINT');
    expect(execForm(entry?.args ?? '')).toEqual(['node', 'dist/cli/main.js', 'serve']);
  });

  it('sets TEE_PROVIDER=auto, so an image without a TEE fails instead of simulating', () => {
    const env = runtime?.instructions.filter((i) => i.keyword === 'ENV').map((i) => i.args) ?? [];
    expect(env.join(' ')).toMatch(/(^|\s)TEE_PROVIDER=auto(\s|$)/);
    expect(env.join(' ')).not.toMatch(/TEE_AUTO_ALLOW_SIMULATED/);
    expect(env.join(' ')).not.toMatch(/GPU_EVIDENCE=simulated/);
  });

  it('sets only environment variables the config accepts (besides NODE_ENV)', () => {
    const names = all
      .filter((i) => i.keyword === 'ENV')
      .flatMap((i) => [...i.args.matchAll(/([A-Z_][A-Z0-9_]*)=/g)].map((m) => m[1] as string));
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) {
      if (name === 'NODE_ENV' || name === 'SOURCE_DATE_EPOCH') continue;
      expect(Object.keys(envSchema.shape), name).toContain(name);
    }
  });

  it('is reproducible: SOURCE_DATE_EPOCH fixes every mtime', () => {
    const args = stages[0]?.instructions.filter((i) => i.keyword === 'ARG').map((i) => i.args) ?? [];
    expect(args.some((a) => a.startsWith('SOURCE_DATE_EPOCH'))).toBe(true);
    expect(text).toMatch(/touch -h -d "@\$\{SOURCE_DATE_EPOCH\}"/);
  });

  it('labels the version from a build argument, never from a version typed into the Dockerfile', () => {
    const version = JSON.parse(readFileSync(repoFile('package.json'), 'utf8')).version as string;
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a Dockerfile ARG reference, not a template
    expect(text).toContain('org.opencontainers.image.version="${VERSION}"');
    expect(text).not.toContain(version);
    // version.ts reads package.json at run time: the runtime stage must ship it.
    const copies = runtime?.instructions.filter((i) => i.keyword === 'COPY').map((i) => parseCopy(i.args));
    expect(copies?.some((c) => c.sources.includes('/app/package.json'))).toBe(true);
  });

  it('ships no fixtures and no sources in the runtime image, only package.json, node_modules and dist', () => {
    const copies =
      runtime?.instructions.filter((i) => i.keyword === 'COPY').map((i) => parseCopy(i.args)) ?? [];
    for (const copy of copies) expect(copy.flags['from']).toBe('build');
    expect(copies.flatMap((c) => c.sources).sort()).toEqual([
      '/app/dist',
      '/app/node_modules',
      '/app/package.json',
    ]);
    expect(text).not.toMatch(/COPY[^\n]*attestation-fixtures/);
  });

  it('has a .dockerignore that admits exactly what the build stage COPYs', () => {
    const ignore = readFileSync(repoFile('.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(ignore[0]).toBe('*');
    const allowed = ignore.slice(1).map((l) => l.replace(/^!/, '').replace(/\/$/, ''));
    const sources = (stages[0]?.instructions ?? [])
      .filter((i) => i.keyword === 'COPY')
      .flatMap((i) => parseCopy(i.args).sources);
    expect(new Set(sources)).toEqual(new Set(allowed));
  });
});
