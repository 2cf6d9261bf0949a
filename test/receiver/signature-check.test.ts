import { describe, expect, it } from '@jest/globals';
import { Webhooks } from '@octokit/webhooks';
import { parseSignatureHeader, startSignatureCheck } from '../../src/receiver/signature-check.ts';
import { signature } from '../helpers/github-delivery.ts';

/** Feeds `body` in chunks of `size` bytes, as the socket would deliver it. */
function check(secrets: { current: string; previous?: string }, header: string, body: Buffer, size: number) {
  const expected = parseSignatureHeader(header);
  if (!expected) return 'malformed';
  const running = startSignatureCheck(secrets, expected);
  for (let at = 0; at < body.length; at += size) running.update(body.subarray(at, at + size));
  return running.finish();
}

describe('the streaming signature check', () => {
  const secret = "It's a Secret to Everybody";
  const vector = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';

  it("matches GitHub's documented test vector, whatever the chunking, as @octokit/webhooks does", async () => {
    const body = Buffer.from('Hello, World!');
    await expect(new Webhooks({ secret }).verify('Hello, World!', vector)).resolves.toBe(true);
    for (const size of [1, 2, 5, 13, 64]) expect(check({ current: secret }, vector, body, size)).toBe('current');
  });

  it('names the secret that matched: the current one, or the previous one during a rotation', () => {
    const body = Buffer.from('{"zen":"Keep it logically awesome."}');
    const secrets = { current: 'new-secret', previous: 'old-secret' };
    expect(check(secrets, signature('new-secret', body), body, 7)).toBe('current');
    expect(check(secrets, signature('old-secret', body), body, 7)).toBe('previous');
    expect(check(secrets, signature('another', body), body, 7)).toBeUndefined();
    expect(check({ current: 'new-secret' }, signature('old-secret', body), body, 7)).toBeUndefined();
  });

  it('takes only sha256= and 64 lowercase hex digits as a signature', () => {
    const good = signature(secret, 'x');
    expect(parseSignatureHeader(good)).toHaveLength(32);
    for (const bad of [
      '',
      'sha256=',
      good.slice(7),
      good.toUpperCase(),
      `${good}0`,
      good.slice(0, -1),
      `${good}, ${good}`,
      `sha1=${'a'.repeat(40)}`,
      ` ${good}`,
    ]) {
      expect({ bad, parsed: parseSignatureHeader(bad) }).toEqual({ bad, parsed: undefined });
    }
  });
});
