import { describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import { pinChartDependency } from '../../../dev/demo/pin-chart-dependency.ts';

const CHART = `# umbrella
apiVersion: v2
name: alerts
version: 0.1.0
dependencies:
  - name: other
    version: 2.0.0
    repository: https://charts.example.com
  - name: alerts
    # pinned by the demo
    version: 1.0.0
    repository: oci://registry.invalid/demo/charts
`;

describe('pinChartDependency', () => {
  it('points the named dependency at the pushed repository and exact version, leaving the rest as it was', () => {
    const pinned = pinChartDependency(CHART, {
      name: 'alerts',
      repository: 'oci://127.0.0.1:5000/demo/charts',
      version: '1.4.0',
    });
    expect(parse(pinned)).toEqual({
      apiVersion: 'v2',
      name: 'alerts',
      version: '0.1.0',
      dependencies: [
        { name: 'other', version: '2.0.0', repository: 'https://charts.example.com' },
        { name: 'alerts', version: '1.4.0', repository: 'oci://127.0.0.1:5000/demo/charts' },
      ],
    });
    expect(pinned).toContain('# umbrella');
    expect(pinned).toContain('# pinned by the demo');
  });

  it('refuses a chart without that dependency', () => {
    expect(() => pinChartDependency(CHART, { name: 'missing', repository: 'oci://r/x', version: '1.0.0' })).toThrow(
      /no dependency named missing/,
    );
    expect(() =>
      pinChartDependency('apiVersion: v2\nname: x\nversion: 1.0.0\n', {
        name: 'x',
        repository: 'oci://r',
        version: '1',
      }),
    ).toThrow(/no dependency named x/);
  });
});
