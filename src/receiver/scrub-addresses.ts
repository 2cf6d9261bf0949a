/** What an address is replaced with in public output. */
export const HIDDEN_ADDRESS = '[address hidden]';

const PATTERNS: readonly RegExp[] = [
  // Any URL: scheme://…
  /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>)\]]+/gi,
  // IPv6 in brackets, with or without a port.
  /\[[0-9a-f:.]*:[0-9a-f:.]*\](?::\d{1,5})?/gi,
  // Bare IPv6: with "::", or five groups and more (clock times have three at most).
  /(?<![\w:])(?:[0-9a-f]{1,4}:){4,7}[0-9a-f]{1,4}(?![\w:])/gi,
  /(?<![\w:])(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?::(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?(?![\w:])/gi,
  // IPv4, with or without a port.
  /(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])/g,
  // host:port where host is a dotted name or localhost (`kubernetes.default.svc:443`, `redis:6379` is left).
  /(?<![\w./-])(?:localhost|[a-z0-9-]+(?:\.[a-z0-9-]+)+):\d{1,5}\b/gi,
  // Names that are only meaningful inside a network, without a port.
  /(?<![\w.-])(?:localhost|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:svc|local|internal|intranet|lan|corp|home|localdomain))\b/gi,
];

/**
 * Replaces anything that looks like a network address (URLs, IP addresses, host:port, cluster-internal
 * names) in text shown to the public. A second wall: public output should carry no such text in the
 * first place. Pure.
 */
export function scrubAddresses(text: string): string {
  return PATTERNS.reduce((scrubbed, pattern) => scrubbed.replace(pattern, HIDDEN_ADDRESS), text);
}
