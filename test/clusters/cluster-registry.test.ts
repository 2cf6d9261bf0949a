import { describe, expect, it } from '@jest/globals';
import { clustersForRepository, parseClusterRegistry, RegistryError } from '../../src/clusters/cluster-registry.ts';

const valid = `
clusters:
  - name: gcp-production
    repo: acme/platform-gitops
    path: clusters/gcp/production
    branch: main
    kubeconfig: /etc/plumbline/kubeconfigs/gcp-production
    prune: true
    interval: 5m
  - name: aws-staging
    repo: Acme/Platform-GitOps
    path: ./clusters/aws/staging/
    inCluster: true
`;

describe('the cluster registry', () => {
  it('parses the documented format and fills in defaults', () => {
    const registry = parseClusterRegistry(valid);
    expect(registry.clusters).toEqual([
      {
        name: 'gcp-production',
        repo: 'acme/platform-gitops',
        repoId: undefined,
        path: 'clusters/gcp/production',
        branch: 'main',
        kubeconfig: '/etc/plumbline/kubeconfigs/gcp-production',
        inCluster: false,
        prune: true,
        intervalMs: 300_000,
        suspend: false,
        selfHeal: true,
        allowHistoryRewrite: false,
        onConflict: 'takeOwnership',
        maxPruneShare: 0.5,
        limits: { namespaces: undefined, clusterScoped: undefined, deniedKinds: [], serviceAccount: undefined },
        previewForks: false,
      },
      expect.objectContaining({ name: 'aws-staging', path: 'clusters/aws/staging', inCluster: true, branch: 'main' }),
    ]);
  });

  it('reads the operator-owned chart sources beside the clusters, and refuses a wrong one', () => {
    expect(parseClusterRegistry(valid).charts).toEqual({ repositories: [], allowPrivateAddresses: false });
    const withCharts = `${valid}charts:
  repositories:
    - url: oci://ghcr.io/external-secrets/charts
      mirror: oci://registry.internal:5000/ghcr/external-secrets/charts
      credentials: /etc/plumbline/charts/ghcr.json
`;
    expect(parseClusterRegistry(withCharts).charts.repositories).toEqual([
      expect.objectContaining({
        url: 'oci://ghcr.io/external-secrets/charts',
        mirror: 'oci://registry.internal:5000/ghcr/external-secrets/charts',
        credentials: '/etc/plumbline/charts/ghcr.json',
      }),
    ]);
    expect(() => parseClusterRegistry(`${valid}charts:\n  repositories:\n    - url: ftp://charts.example\n`)).toThrow(
      /charts\.repositories\[0\]\.url/,
    );
  });

  it('parses tenancy limits, fork previews and a pinned repository id', () => {
    const registry = parseClusterRegistry(`
clusters:
  - name: tenant
    repo: acme/team-a
    repoId: 4242
    path: clusters/a
    inCluster: true
    namespaces: [podinfo, observability]
    clusterScoped: [Namespace]
    deniedKinds: [ValidatingWebhookConfiguration]
    serviceAccount: tenants/team-a
    previewForks: true
`);
    expect(registry.clusters[0]).toMatchObject({
      repoId: 4242,
      previewForks: true,
      limits: {
        namespaces: ['podinfo', 'observability'],
        clusterScoped: ['Namespace'],
        deniedKinds: ['ValidatingWebhookConfiguration'],
        serviceAccount: 'tenants/team-a',
      },
    });
  });

  it('a pinned repository id matches that id only, whatever the name', () => {
    const registry = parseClusterRegistry(
      'clusters:\n  - {name: pinned, repo: acme/old-name, repoId: 7, path: ., inCluster: true}\n',
    );
    expect(clustersForRepository(registry, { id: 7, fullName: 'acme/renamed' }).map((c) => c.name)).toEqual(['pinned']);
    expect(clustersForRepository(registry, { id: 8, fullName: 'acme/old-name' })).toEqual([]);
  });

  it('normalises paths, the repository root included', () => {
    const registry = parseClusterRegistry(
      'clusters:\n  - {name: root, repo: a/b, path: ., inCluster: true}\n  - {name: two, repo: a/b, path: ./x//y/, inCluster: true}\n',
    );
    expect(registry.clusters.map((c) => c.path)).toEqual(['', 'x/y']);
  });

  it('lets a repository reach only the clusters registered for it', () => {
    const registry = parseClusterRegistry(valid);
    expect(clustersForRepository(registry, { id: 1, fullName: 'acme/platform-gitops' }).map((c) => c.name)).toEqual([
      'gcp-production',
      'aws-staging',
    ]);
    expect(clustersForRepository(registry, { id: 2, fullName: 'evil/platform-gitops' })).toEqual([]);
    expect(clustersForRepository(registry, { id: 1, fullName: 'acme/platform-gitops' }, 'release')).toEqual([]);
  });

  it.each([
    [
      'a path outside the repository',
      'path: ../../etc',
      /clusters\[0\]\.path \(line 5\): must be a path inside the repository/,
    ],
    ['a bad interval', 'interval: often', /clusters\[0\]\.interval \(line 5\): must be a duration/],
    ['an unknown field', 'prunee: true', /clusters\[0\] \(line 2\): Unrecognized key: "prunee"/],
    ['a full ref as branch', 'branch: refs/heads/main', /clusters\[0\]\.branch \(line 5\): must be a branch name/],
  ])('names the field and line of %s', (_case, line, message) => {
    const text = `clusters:\n  - name: one\n    repo: acme/gitops\n    kubeconfig: /k\n    ${line}\n${line.startsWith('path') ? '' : '    path: clusters/one\n'}`;
    expect(() => parseClusterRegistry(text)).toThrow(RegistryError);
    expect(() => parseClusterRegistry(text)).toThrow(message);
  });

  it('requires exactly one of kubeconfig and inCluster', () => {
    const both = 'clusters:\n  - name: one\n    repo: a/b\n    path: c\n    kubeconfig: /k\n    inCluster: true\n';
    const neither = 'clusters:\n  - name: one\n    repo: a/b\n    path: c\n';
    expect(() => parseClusterRegistry(both)).toThrow(/set exactly one of kubeconfig or inCluster/);
    expect(() => parseClusterRegistry(neither)).toThrow(/clusters\[0\]\.kubeconfig .*set exactly one/);
  });

  it('refuses duplicate names and invalid YAML with the line', () => {
    const twice =
      'clusters:\n  - {name: one, repo: a/b, path: c, inCluster: true}\n  - {name: one, repo: a/b, path: d, inCluster: true}\n';
    expect(() => parseClusterRegistry(twice)).toThrow('clusters[1].name: "one" is registered twice');
    expect(() => parseClusterRegistry('clusters:\n  - name: [one\n')).toThrow(/invalid YAML at line \d/);
  });
});
