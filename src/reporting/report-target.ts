import { z } from 'zod';
import { parseStored } from '../redis/parse-stored.ts';

/** The commit a report is about, as a job names it; kept in Redis while the commit has open statuses. */
export const reportTargetSchema = z.object({
  repository: z.object({ id: z.number().int(), fullName: z.string().regex(/^[^/]+\/[^/]+$/) }),
  installationId: z.number().int().optional(),
  sha: z.string().min(1),
});

export interface ReportTarget {
  readonly repository: { readonly id: number; readonly fullName: string };
  readonly installationId: number | undefined;
  readonly sha: string;
}

/** A target read back from Redis; undefined when it is not one (corrupt, or written by another version). Pure. */
export function parseReportTarget(raw: string): ReportTarget | undefined {
  const stored = parseStored(reportTargetSchema, raw);
  if (stored.state !== 'valid') return undefined;
  const { repository, installationId, sha } = stored.value;
  return { repository, installationId, sha };
}
