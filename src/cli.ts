import { ConfigError, readEnvOptions } from './config/read-env-options.ts';
import { createLogger } from './logging/create-logger.ts';
import { startReceiver } from './receiver/start-receiver.ts';

const USAGE = `usage: plumbline <command>

  receiver   the HTTP server: GitHub webhooks, /healthz, /readyz, /metrics
  worker     queue workers and the resync scheduler (not built yet)
  all        receiver and worker in one process (not built yet)
  demo       the whole system on this machine (not built yet)
`;

/** Runs until SIGTERM/SIGINT, then shuts down gracefully. */
async function main(command: string | undefined): Promise<void> {
  if (command === undefined || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return;
  }
  if (command === 'worker' || command === 'all' || command === 'demo') {
    process.stderr.write(
      `plumbline ${command}: coming soon — not implemented yet in this version (see the open issues); ` +
        'the receiver works today: `npx plumbline receiver`\n',
    );
    process.exitCode = 2;
    return;
  }
  if (command !== 'receiver') throw new ConfigError(`unknown command "${command}"\n\n${USAGE}`);

  const options = readEnvOptions(process.env);
  const logger = createLogger(options.logLevel);
  const receiver = await startReceiver(options, logger);
  const stop = async (signal: string) => {
    logger.info({ signal }, 'shutting down');
    await receiver.close();
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

main(process.argv[2]).catch((error: unknown) => {
  const message = error instanceof ConfigError ? error.message : error instanceof Error ? error.stack : String(error);
  process.stderr.write(`plumbline: ${message}\n`);
  process.exitCode = 1;
});
