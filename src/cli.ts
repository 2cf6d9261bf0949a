import { constants } from 'node:os';
import { startWorker } from '../workers/start-worker.ts';
import { ConfigError, readEnvOptions } from './config/read-env-options.ts';
import { createLogger } from './logging/create-logger.ts';
import { startReceiver } from './receiver/start-receiver.ts';
import {
  type Deadline,
  deadlineIn,
  drainDeadline,
  isClean,
  type ShutdownReport,
  shutdownSteps,
} from './support/close-within.ts';

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

/** How long after the grace a shutdown that is somehow still running is cut short (a last resort). */
const BACKSTOP_MS = 5_000;

/**
 * Runs until SIGTERM/SIGINT, then shuts down within the grace (`PLUMBLINE_SHUTDOWN_GRACE_MS`): exit code 0
 * when everything finished, 1 when something was given up on (named in the log), 128 + the signal's number
 * when a second signal cut the shutdown short.
 */
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
  // Signals are handled from the first moment: a SIGTERM during start-up waits for it (within the grace),
  // then stops cleanly.
  const running: { shutdown(deadline: Deadline): Promise<ShutdownReport> }[] = [];
  let starting: Promise<unknown> = Promise.resolve();
  const stop = async (signal: string) => {
    const graceMs = options.shutdownGraceMs;
    const deadline = deadlineIn(graceMs);
    logger.info({ signal, graceMs }, 'shutting down');
    setTimeout(() => {
      logger.error({ graceMs }, 'shutdown still not finished after its grace; exiting');
      process.exit(1);
    }, graceMs + BACKSTOP_MS).unref();
    // Start-up may itself wait for Redis: a part that has not started by the deadline is given up on.
    const start = shutdownSteps('start-up', deadline);
    await start.run('starting', () => starting, { by: drainDeadline(deadline) });
    const reports = [start.report(), ...(await Promise.all(running.map((part) => part.shutdown(deadline))))];
    const clean = isClean(reports);
    if (!clean)
      logger.warn(
        {
          gaveUp: reports.flatMap((r) => r.gaveUp),
          failed: reports.flatMap((r) => r.failed),
          graceMs,
        },
        'shutdown gave up on what it could not finish',
      );
    // Whatever was given up on may still hold the event loop (a reconnecting client): exit now.
    process.exit(clean ? 0 : 1);
  };
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting at once');
      process.exit(128 + (constants.signals[signal] ?? 0));
    }
    stopping = true;
    void stop(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
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
