import { startWorker } from '../workers/start-worker.ts';
import { ConfigError, readEnvOptions } from './config/read-env-options.ts';
import { createLogger } from './logging/create-logger.ts';
import { startReceiver } from './receiver/start-receiver.ts';

const USAGE = `usage: plumbline <command>

  receiver   the HTTP server: GitHub webhooks, /healthz, /readyz, /metrics
  worker     queue workers: pull, render, apply and prune each pushed commit
  all        receiver and worker in one process
  demo       the whole system on this machine, nothing to configure: a local Kubernetes control
             plane, Redis, a GitHub stand-in with a sample repository, and a story told through real
             webhooks (options: --kubeconfig PATH to use an existing cluster; --exit to stop after it;
             from a clone only: the container image leaves it out)
`;
// `demo` is development tooling (dev/demo/), kept out of the product and the image: bin/plumbline.js
// sends it to the compiled dev/demo/cli.ts and everything else here.

/** Runs until SIGTERM/SIGINT, then shuts down gracefully. */
async function main(command: string | undefined): Promise<void> {
  if (command === undefined || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return;
  }
  if (command !== 'receiver' && command !== 'worker' && command !== 'all') {
    throw new ConfigError(`unknown command "${command}"\n\n${USAGE}`);
  }

  const options = readEnvOptions(process.env);
  const logger = createLogger(options.logLevel);
  // Signals are handled from the first moment: a SIGTERM during start-up waits for it, then stops cleanly.
  const running: { close(): Promise<void> }[] = [];
  let starting: Promise<unknown> = Promise.resolve();
  const stop = async (signal: string) => {
    logger.info({ signal }, 'shutting down');
    await starting.catch(() => undefined);
    await Promise.all(running.map((part) => part.close()));
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  starting = (async () => {
    if (command === 'worker' || command === 'all') running.push(await startWorker(options, logger));
    if (command === 'receiver' || command === 'all') running.push(await startReceiver(options, logger));
  })();
  await starting;
}

main(process.argv[2]).catch((error: unknown) => {
  const message = error instanceof ConfigError ? error.message : error instanceof Error ? error.stack : String(error);
  process.stderr.write(`plumbline: ${message}\n`);
  process.exitCode = 1;
});
