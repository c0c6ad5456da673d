// `npm run build` (also `prepare`, so `npm ci` in a checkout and `npm pack` build it): a clean dist/
// from src/, with declarations for the package's `exports`, and the non-TypeScript file the code
// reads beside its module at run time (the Tapp .proto, src/tapp/client.ts TAPP_PROTO_PATH).
import { spawnSync } from 'node:child_process';
import { copyFileSync, rmSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
// Run through npm, which puts node_modules/.bin (typescript's tsc) on PATH.
const built = spawnSync('tsc', ['-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (built.status !== 0) {
  process.stderr.write('build: tsc failed\n');
  process.exit(built.status ?? 1);
}
copyFileSync('src/tapp/tapp-service.proto', 'dist/tapp/tapp-service.proto');
