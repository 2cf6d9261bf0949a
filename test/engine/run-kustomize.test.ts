import { describe, expect, it } from '@jest/globals';
import { cleanKustomizeError } from '../../src/engine/run-kustomize.ts';

describe('cleanKustomizeError', () => {
  it("drops kubectl's klog prefix from a one-line error", () => {
    const stderr =
      'E1128 12:14:33.123456   4242 run.go:72] "command failed" err="accumulating resources: \\"x\\" missing"\n';
    expect(cleanKustomizeError(stderr).trim()).toBe('accumulating resources: "x" missing');
  });

  it('drops it from a multi-line error (`err=<`, tab-indented lines, ` >`), keeping the lines', () => {
    const stderr = [
      'E1202 02:59:36.192389   20557 run.go:72] "command failed" err=<',
      '\tplumbline: refused',
      "\t: unable to run: 'helm pull' with env=[] (is 'helm' installed?): exit status 1",
      ' >',
      '',
    ].join('\n');
    expect(cleanKustomizeError(stderr).trim()).toBe(
      "plumbline: refused\n: unable to run: 'helm pull' with env=[] (is 'helm' installed?): exit status 1",
    );
  });
});
