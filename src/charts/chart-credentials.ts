import { readFile } from 'node:fs/promises';
import { z } from 'zod';

/** A chart source's credentials, read from the operator's file at use time; never logged, never stored. */
export interface ChartCredentials {
  readonly username: string;
  readonly password: string;
}

const credentialsSchema = z.object({ username: z.string(), password: z.string() });

export class ChartCredentialsError extends Error {
  override readonly name = 'ChartCredentialsError';
}

/** Reads `{"username": …, "password": …}`; an error names the file, never its content. */
export async function readChartCredentials(file: string): Promise<ChartCredentials> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ChartCredentialsError(
      `cannot read the chart credentials file ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ChartCredentialsError(`the chart credentials file ${file} is not JSON`);
  }
  const parsed = credentialsSchema.safeParse(value);
  if (!parsed.success) {
    throw new ChartCredentialsError(`the chart credentials file ${file} must hold {"username": "…", "password": "…"}`);
  }
  return { username: parsed.data.username, password: parsed.data.password };
}

export function basicAuthorization(credentials: ChartCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}
