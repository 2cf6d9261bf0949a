import { parentPort, workerData } from 'node:worker_threads';
import { parseManifests } from './parse-manifests.ts';

/** Entry of the worker thread that parses large YAML streams for parseManifestsOffThread. */
const { text, file } = workerData as { text: string; file: string | undefined };
parentPort?.postMessage(parseManifests(text, file));
