import { describe, expect, it } from '@jest/globals';
import { checkHost, isPrivateAddress } from '../../src/charts/address-wall.ts';

describe('isPrivateAddress', () => {
  it.each([
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '::1',
    '::',
    'fe80::1',
    'fd00::1',
    'fc12::3',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:10.0.0.1',
    '::ffff:7f00:1',
    '64:ff9b::a9fe:a9fe',
    '2002:a00:1::',
  ])('refuses %s', (address) => {
    expect(isPrivateAddress(address)).toBe(true);
  });

  it.each(['140.82.112.3', '8.8.8.8', '2606:4700:4700::1111', '::ffff:8.8.8.8', '2a00:1450:4001:80b::200e'])(
    'allows %s',
    (address) => {
      expect(isPrivateAddress(address)).toBe(false);
    },
  );
});

describe('checkHost', () => {
  it('refuses a name with one private answer among public ones, and returns the checked address otherwise', async () => {
    const mixed = async () => [
      { address: '140.82.112.3', family: 4 as const },
      { address: '10.0.0.7', family: 4 as const },
    ];
    const publicOnly = async () => [{ address: '140.82.112.3', family: 4 as const }];

    await expect(checkHost('charts.example.com', false, mixed)).rejects.toThrow('resolves to 10.0.0.7');
    await expect(checkHost('charts.example.com', false, publicOnly)).resolves.toEqual({
      address: '140.82.112.3',
      family: 4,
    });
    await expect(checkHost('charts.example.com', true, mixed)).resolves.toEqual({ address: '140.82.112.3', family: 4 });
  });
});
