import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * A folder's index.ts is its contract (docs/architecture.md, code habit 1): the list of what each one exports is pinned
 * here, so adding or removing a public name is a visible, reviewed change.
 */
const src = fileURLToPath(new URL('../src/', import.meta.url));
const features = readdirSync(src, { withFileTypes: true })
  .filter((d) => d.isDirectory() && d.name !== 'cli')
  .map((d) => d.name)
  .sort();

describe('public surfaces', () => {
  it.each(features)('src/%s/index.ts exports exactly its pinned names', async (feature) => {
    const mod = (await import(pathToFileURL(join(src, feature, 'index.ts')).href)) as Record<string, unknown>;
    expect(Object.keys(mod).sort()).toMatchSnapshot();
  });
});
