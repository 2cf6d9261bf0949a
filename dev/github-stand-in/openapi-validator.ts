import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import * as addFormatsModule from 'ajv-formats';
import { packageRoot } from '../../src/support/package-root.ts';

interface Operation {
  readonly method: string;
  readonly template: string;
  readonly pattern: RegExp;
  readonly parameterNames: readonly string[];
  readonly validateBody: ValidateFunction | undefined;
  readonly bodyRequired: boolean;
}

export interface MatchedOperation {
  readonly operation: string;
  readonly params: Readonly<Record<string, string>>;
  /** Validation errors of the request body against GitHub's schema; empty when valid. */
  readonly bodyErrors: readonly string[];
}

const escapePointer = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');
// ajv-formats ships as CommonJS with a default export that ESM sees wrapped.
const addFormats = addFormatsModule.default as unknown as (ajv: Ajv) => Ajv;

/**
 * Matches requests to the operations of GitHub's official OpenAPI description (the subset in
 * dev/github-stand-in/openapi-subset.json) and validates their JSON bodies against it.
 */
export class OpenApiValidator {
  private readonly operations: Operation[] = [];

  constructor(file = `${packageRoot()}/dev/github-stand-in/openapi-subset.json`) {
    const spec = JSON.parse(readFileSync(file, 'utf8')) as {
      paths: Record<
        string,
        Record<string, { requestBody?: { required?: boolean; content?: Record<string, unknown> } }>
      >;
    };
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv);
    ajv.addSchema(spec, 'github');
    for (const [template, methods] of Object.entries(spec.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        const hasJsonBody = operation.requestBody?.content?.['application/json'] !== undefined;
        const pointer = `github#/paths/${escapePointer(template)}/${method}/requestBody/content/application~1json/schema`;
        const parameterNames = [...template.matchAll(/\{(\w+)\}/g)].map((m) => m[1] ?? '');
        this.operations.push({
          method: method.toUpperCase(),
          template,
          pattern: new RegExp(`^${template.replace(/\{\w+\}/g, '([^/]+)')}$`),
          parameterNames,
          validateBody: hasJsonBody ? ajv.compile({ $ref: pointer }) : undefined,
          bodyRequired: operation.requestBody?.required === true,
        });
      }
    }
  }

  match(method: string, path: string, body: unknown): MatchedOperation | undefined {
    for (const operation of this.operations) {
      if (operation.method !== method) continue;
      const found = operation.pattern.exec(path);
      if (!found) continue;
      const params = Object.fromEntries(
        operation.parameterNames.map((name, i) => [name, decodeURIComponent(found[i + 1] ?? '')]),
      );
      let bodyErrors: string[] = [];
      if (body === undefined && operation.bodyRequired) {
        bodyErrors = ['(body) is required'];
      } else if (body !== undefined && operation.validateBody && !operation.validateBody(body)) {
        bodyErrors = (operation.validateBody.errors ?? []).map(
          (e) => `${e.instancePath || '(body)'} ${e.message ?? ''}`,
        );
      }
      return { operation: `${method} ${operation.template}`, params, bodyErrors };
    }
    return undefined;
  }
}
