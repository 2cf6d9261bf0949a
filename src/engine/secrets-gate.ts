import { type ManifestProblem, objectRef, type RenderedObject } from './manifest.ts';

const hasEntries = (value: unknown) => typeof value === 'object' && value !== null && Object.keys(value).length > 0;

/**
 * Secrets never live in Git. A rendered core `Secret` that carries `data` or `stringData` fails the
 * commit (naming file and object, never the value); a SOPS-encrypted object is refused because no
 * decryption is configured. References — `ExternalSecret`, a `Secret` with no payload — pass.
 */
export function checkSecrets(objects: readonly RenderedObject[]): ManifestProblem[] {
  const problems: ManifestProblem[] = [];
  for (const { manifest, source, app } of objects) {
    const ref = objectRef(manifest);
    if ('sops' in manifest) {
      problems.push({
        message: `${ref} is SOPS-encrypted, and Plumbline has no decryption configured: reference the secret with an ExternalSecret instead`,
        source,
        object: ref,
      });
    } else if (
      manifest.kind === 'Secret' &&
      manifest.apiVersion === 'v1' &&
      (hasEntries(manifest.data) || hasEntries(manifest.stringData))
    ) {
      // A chart renders a Secret from its values: the fix is the chart's own switch to an existing Secret.
      const message = app?.chart
        ? `${ref} of app ${app.name} carries secret data rendered from Git: set the chart's existingSecret (or its equivalent) to a Secret your secret store makes, e.g. with an ExternalSecret`
        : `${ref} carries secret data in Git: move it to your secret store and reference it (e.g. an ExternalSecret)`;
      problems.push({
        message,
        source,
        object: ref,
      });
    }
  }
  return problems;
}
