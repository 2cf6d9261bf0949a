import { type DestinationStream, type Logger, pino } from 'pino';

/**
 * Paths pino blanks out wherever they appear. Messages are static strings and details are fields, so
 * secrets could only leak through a field: these are the ones that could ever carry one.
 */
export const REDACTED_PATHS = [
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["x-hub-signature-256"]',
  'req.headers["x-hub-signature"]',
  'privateKey',
  '*.privateKey',
  'webhookSecret',
  '*.webhookSecret',
  'previousWebhookSecret',
  '*.previousWebhookSecret',
  'statusPageToken',
  '*.statusPageToken',
  'password',
  '*.password',
  'data.data',
  'data.stringData',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'plumbline' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
