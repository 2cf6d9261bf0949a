import type { Manifest } from './manifest.ts';

/**
 * A namespaced CRD with one served version `v1` whose `spec` follows `specSchema` (by default anything),
 * as an operator such as ESO serves it: the demo installs one, the tests several.
 */
export function customResourceDefinition(options: {
  group: string;
  kind: string;
  plural: string;
  specSchema?: Record<string, unknown>;
}): Manifest {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${options.plural}.${options.group}` },
    spec: {
      group: options.group,
      scope: 'Namespaced',
      names: { plural: options.plural, singular: options.kind.toLowerCase(), kind: options.kind },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: {
                spec: options.specSchema ?? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
              },
            },
          },
        },
      ],
    },
  };
}
