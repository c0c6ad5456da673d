#!/usr/bin/env node
import { serve } from './serve.js';

const USAGE = `teeml-sidecar: verifiable inference sidecar for vLLM in Intel TDX + NVIDIA confidential computing

Usage:
  teeml-sidecar [serve]              start the sidecar (configuration from the environment; serve --help)
  teeml-sidecar verify <base-url>    check a running sidecar end to end (teeml-sidecar verify --help)
  teeml-sidecar gateway --provider <url>
                                     local OpenAI endpoint that verifies every answer (gateway --help)
  teeml-sidecar receipts verify <file>
                                     re-check a gateway receipts file offline
  teeml-sidecar doctor [--json] [--nras]  preflight on this machine: TEE, GPU, keys, wiring (doctor --help)
  teeml-sidecar --version
`;

const main = async (argv: string[]): Promise<number> => {
  const [command = 'serve', ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest, process.env);
    case 'verify': {
      const { verifyCommand } = await import('./verify.js');
      return verifyCommand(rest, process.stdout, process.stderr);
    }
    case 'gateway': {
      const { gatewayCommand } = await import('./gateway.js');
      const code = await gatewayCommand(rest, process.env, process.stdout, process.stderr);
      // In 0G mode the SDK leaves a receipt timeout of up to 5 minutes running for every transaction
      // it sent (not unref'd, never cleared). The gateway has closed: flush stdout and exit now.
      await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
      return process.exit(code);
    }
    case 'receipts': {
      const { receiptsCommand } = await import('./receipts.js');
      return receiptsCommand(rest, process.stdout, process.stderr);
    }
    case 'doctor': {
      const { doctorCommand } = await import('./doctor.js');
      const { exitNow } = await import('../doctor/index.js');
      let timedOut = false;
      const code = await doctorCommand(rest, process.env, process.stdout, process.stderr, {
        onTimeout: () => {
          timedOut = true;
        },
      });
      // A native call that outlived its check's deadline (a hung NVML or quote device) holds a libuv
      // worker thread, which an ordinary exit would wait for: exit once the report is out.
      process.stdout.write('', () => (timedOut ? exitNow(code) : process.exit(code)));
      return -1;
    }
    case '--version':
    case '-v': {
      const { VERSION } = await import('../server/version.js');
      process.stdout.write(`${VERSION}\n`);
      return 0;
    }
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    default: {
      const { closestFlag } = await import('./parse-error.js');
      const meant = closestFlag(command, ['serve', 'verify', 'gateway', 'receipts', 'doctor', 'help']);
      const hint = meant === undefined ? '' : `; did you mean "${meant.slice(2)}"?`;
      process.stderr.write(`teeml-sidecar: unknown command "${command}"${hint}\n\n${USAGE}`);
      return 2;
    }
  }
};

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`teeml-sidecar: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
