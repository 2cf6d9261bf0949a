import { ConfigError } from '../../src/config/read-env-options.ts';
import { runDemo } from './run-demo.ts';

/** `plumbline demo`: bin/plumbline.js sends the command here, with `demo` itself taken off the arguments. */
const USAGE = `usage: plumbline demo [--kubeconfig PATH] [--exit]

  the whole system on this machine, nothing to configure: a local Kubernetes control plane, Redis, a
  GitHub stand-in with a sample repository, and a story told through real webhooks
  --kubeconfig PATH   use an existing cluster instead of the local control plane
  --exit              stop after the story instead of waiting for Ctrl-C
`;

export function parseDemoArgs(args: readonly string[]): { kubeconfig: string | undefined; exitAfterStory: boolean } {
  let kubeconfig: string | undefined;
  let exitAfterStory = false;
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i];
    if (arg === '--exit') exitAfterStory = true;
    else if (arg === '--kubeconfig' && args[i + 1]) kubeconfig = args[++i];
    else if (arg?.startsWith('--kubeconfig=')) kubeconfig = arg.slice('--kubeconfig='.length);
    else throw new ConfigError(`demo: unknown option ${JSON.stringify(arg)}\n\n${USAGE}`);
  }
  return { kubeconfig, exitAfterStory };
}

async function main(args: readonly string[]): Promise<void> {
  if (args[0] === '--help' || args[0] === '-h') {
    process.stdout.write(USAGE);
    return;
  }
  await runDemo({ ...parseDemoArgs(args), out: (line) => process.stdout.write(`${line}\n`) });
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const message = error instanceof ConfigError ? error.message : error instanceof Error ? error.stack : String(error);
  process.stderr.write(`plumbline: ${message}\n`);
  process.exitCode = 1;
});
