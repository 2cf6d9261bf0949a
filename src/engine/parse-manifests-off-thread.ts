import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type ParseResult, parseManifests } from './parse-manifests.ts';

/** Below this, parsing takes a few milliseconds: a thread would cost more than it saves. */
const INLINE_CHARS = 64 * 1024;

/**
 * Heap of one parsing thread: parsed YAML takes several times its text (the render limit is 64 MiB
 * by default). A parse that needs more ends with a problem, not with the worker process.
 */
const THREAD_HEAP_MB = 2048;

const fromSource = import.meta.url.endsWith('.ts');
const workerUrl = new URL(`./parse-manifests-worker.${fromSource ? 'ts' : 'js'}`, import.meta.url);

/**
 * The thread's bootstrap. Compiled code loads the worker module directly; from TypeScript sources (tests,
 * tsx) the thread registers tsx first, since Node 20 cannot load `.ts` files by itself.
 */
function bootstrap(): string {
  if (!fromSource) return `import(${JSON.stringify(workerUrl.href)});`;
  // tsx's ESM entry (its CommonJS one cannot register hooks from a thread's bootstrap).
  const tsx = pathToFileURL(
    createRequire(import.meta.url)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs'),
  ).href;
  return `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(workerUrl.href)}); });`;
}

/**
 * parseManifests with the same results — YAML 1.1, file and line, alias limit — but, for anything
 * larger than a small file, in a worker thread: a multi-MiB commit or kustomize output must not stall
 * the event loop (the job lock is renewed from it, and a stalled renewal hands the job to another
 * worker).
 */
export async function parseManifestsOffThread(text: string, file: string | undefined): Promise<ParseResult> {
  if (text.length <= INLINE_CHARS) return parseManifests(text, file);
  return new Promise((resolve, reject) => {
    const worker = new Worker(bootstrap(), {
      eval: true,
      workerData: { text, file },
      resourceLimits: { maxOldGenerationSizeMb: THREAD_HEAP_MB },
    });
    let settled = false;
    const settle = (done: () => void) => {
      if (settled) return;
      settled = true;
      done();
      void worker.terminate();
    };
    worker.once('message', (result: ParseResult) => settle(() => resolve(result)));
    worker.once('error', (error: Error & { code?: string }) =>
      settle(() =>
        error.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? resolve({
              objects: [],
              problems: [
                {
                  message: `parsing needs more than ${THREAD_HEAP_MB} MiB of memory: refused`,
                  source: file === undefined ? undefined : { file },
                },
              ],
            })
          : reject(error),
      ),
    );
    worker.once('exit', (code) =>
      settle(() => reject(new Error(`the parsing thread exited with code ${code} before answering`))),
    );
  });
}
