import { join } from 'node:path';
import { packageRoot } from '../../src/support/package-root.ts';
import { stackDown, stackUp } from './stack.ts';
import { defaultCacheDir } from './toolchain.ts';

/** `npm run local:up` / `npm run local:down`. */
async function main(command: string | undefined): Promise<void> {
  const root = packageRoot();
  const options = {
    stackDir: join(root, '.local'),
    goDir: join(root, 'dev', 'local-stack', 'go'),
    cacheDir: defaultCacheDir(process.env),
    log: (line: string) => process.stderr.write(`local-stack: ${line}\n`),
  };
  if (command === 'up') await stackUp(options);
  else if (command === 'down') await stackDown(options);
  else throw new Error(`usage: local-stack up|down (got ${command ?? 'nothing'})`);
}

main(process.argv[2]).catch((error: unknown) => {
  process.stderr.write(`local-stack: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
