import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { LeaseReport, describeIssues } from '../../schema/index.ts';

// A node's own lease reports on disk, so that a node that reports and then reboots (a new
// process) goes on announcing them to peers that missed them.

/** Rollouts whose reports are kept; older ones are dropped first. */
const KEPT_ROLLOUTS = 32;

const OwnReportsFile = z.object({ v: z.literal(1), reports: z.array(LeaseReport) });

/** Keeps the reports of the newest rollouts (by the time of their latest report). */
function newest(reports: readonly LeaseReport[]): LeaseReport[] {
  const latest = new Map<string, string>();
  for (const r of reports) {
    const seen = latest.get(r.rolloutId);
    if (!seen || r.at > seen) latest.set(r.rolloutId, r.at);
  }
  const keep = new Set(
    [...latest]
      .sort((a, b) => (a[1] < b[1] ? 1 : -1))
      .slice(0, KEPT_ROLLOUTS)
      .map(([id]) => id),
  );
  return reports.filter((r) => keep.has(r.rolloutId));
}

/** Writes the reports atomically (temp file, fsync, rename). */
export async function saveOwnReports(file: string, reports: readonly LeaseReport[]): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(JSON.stringify({ v: 1, reports: newest(reports) }));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
}

/**
 * Reads the reports kept by `saveOwnReports`; none when the file does not exist. A file that
 * cannot be read as reports of this node is moved aside (`.unreadable`), said in the log, and
 * the node starts without it: the reports only speed peers up, the schedule's fixed ends bound
 * every wait without them.
 */
export async function loadOwnReports(file: string, nodeId: string, log: Logger): Promise<LeaseReport[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  let raw: unknown;
  let problem: string | undefined;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    problem = `not JSON (${(err as Error).message})`;
  }
  if (problem === undefined) {
    const parsed = OwnReportsFile.safeParse(raw);
    if (!parsed.success) problem = describeIssues(parsed.error.issues, raw).join('; ');
    else {
      const foreign = parsed.data.reports.find((r) => r.nodeId !== nodeId);
      if (!foreign) return parsed.data.reports;
      problem = `it holds a report of node ${foreign.nodeId}, expected only ${nodeId}'s`;
    }
  }
  const aside = `${file}.unreadable`;
  await rename(file, aside);
  log.warn(
    { file, movedTo: aside, problem },
    'the kept lease reports cannot be read; moved aside, starting without them (peers wait for the fixed turn ends instead)',
  );
  return [];
}
