import { stackDown } from '../../dev/local-stack/stack.ts';

/** Stops the local stack only when this jest run started it; a stack from `npm run local:up` keeps running. */
export default async function globalTeardown(): Promise<void> {
  const stackDir = process.env.PLUMBLINE_TEST_STACK_DIR;
  if (process.env.PLUMBLINE_TEST_STOP_STACK === '1' && stackDir) {
    await stackDown({ stackDir, log: (line) => process.stderr.write(`local-stack: ${line}\n`) });
  }
}
