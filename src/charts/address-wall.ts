import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/** An address a chart fetch may connect to: checked once, then pinned for the connection. */
export interface CheckedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** Resolves a host to its addresses (`dns.lookup`, all of them). Injected by tests that need a fake name. */
export type ResolveHost = (host: string) => Promise<readonly CheckedAddress[]>;

export class AddressRefusedError extends Error {
  override readonly name = 'AddressRefusedError';
}

const PRIVATE_V4: readonly (readonly [string, number])[] = [
  ['0.0.0.0', 8], // unspecified, "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // CGNAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local (cloud metadata lives here)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];

const PRIVATE_V6: readonly (readonly [string, number])[] = [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['::', 96], // IPv4-compatible (deprecated)
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
];

const blocked = new BlockList();
for (const [network, prefix] of PRIVATE_V4) blocked.addSubnet(network, prefix, 'ipv4');
for (const [network, prefix] of PRIVATE_V6) blocked.addSubnet(network, prefix, 'ipv6');

/**
 * Whether an address is loopback, private, link-local, unique-local, CGNAT, multicast, unspecified or
 * otherwise not a public unicast address. IPv6 forms that embed an IPv4 address (v4-mapped `::ffff:a.b.c.d`,
 * NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the embedded address.
 */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family !== 6) return true;
  const embedded = embeddedIpv4(address);
  if (embedded !== undefined) return blocked.check(embedded, 'ipv4');
  return blocked.check(address, 'ipv6');
}

/** The IPv4 address inside a v4-mapped, NAT64 or 6to4 IPv6 address. */
function embeddedIpv4(address: string): string | undefined {
  const groups = expandIpv6(address);
  if (groups === undefined) return undefined;
  const v4 = (high: number, low: number) => `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
  const [g0, g1, g2, g3, g4, g5, g6, g7] = groups as [number, number, number, number, number, number, number, number];
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0xffff) return v4(g6, g7);
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return v4(g6, g7);
  if (g0 === 0x2002) return v4(g1, g2);
  return undefined;
}

/** Eight 16-bit groups of an IPv6 address (dotted IPv4 tail included). */
function expandIpv6(address: string): number[] | undefined {
  let text = address.split('%')[0] ?? address;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)));
  const first = parse(head);
  const last = tail === undefined ? [] : parse(tail);
  const missing = 8 - first.length - last.length;
  if (missing < 0 || (tail === undefined && missing !== 0)) return undefined;
  return [...first, ...new Array<number>(missing).fill(0), ...last];
}

export const resolveWithDns: ResolveHost = async (host) => {
  const answers = await lookup(host, { all: true, verbatim: true });
  return answers.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

/**
 * The address a chart fetch connects to. Every address the name resolves to is checked (a name with one
 * private answer among public ones is refused: which one the connection would use is not ours to guess);
 * the first is returned so the caller connects to exactly what was checked, without a second lookup.
 */
export async function checkHost(
  host: string,
  allowPrivateAddresses: boolean,
  resolve: ResolveHost = resolveWithDns,
): Promise<CheckedAddress> {
  const bare = host.startsWith('[') ? host.slice(1, -1) : host;
  const literal = isIP(bare);
  const addresses: readonly CheckedAddress[] =
    literal === 0 ? await resolve(bare) : [{ address: bare, family: literal === 6 ? 6 : 4 }];
  const [first] = addresses;
  if (first === undefined) throw new AddressRefusedError(`${host} resolves to no address`);
  if (!allowPrivateAddresses) {
    const refused = addresses.find((a) => isPrivateAddress(a.address));
    if (refused) {
      throw new AddressRefusedError(
        `${host} resolves to ${refused.address}, a loopback, private or link-local address: charts are fetched from such addresses only when the operator lists the source in charts.repositories`,
      );
    }
  }
  return first;
}
