import { openEventLog, type LoggedEvent } from '../../eventlog/index.ts';
import {
  isValidId,
  nodeEventsFilters,
  parseNodeSubject,
  rolloutEventsFilter,
  type DomainEvent,
} from '../../schema/index.ts';
import { parseFlags, type Command } from '../command.ts';
import { cliConfig, withNats } from '../context.ts';
import { listRejections, openRejectionBucket } from '../../trust/index.ts';
import type { RejectionRecord } from '../../schema/index.ts';
import { UsageError } from '../usage-error.ts';

const usage = 'slotflow events [--follow] [--rollout ID] [--node ID] [--from SEQ] [--rejected] [--json]';

function checkId(flag: string, value: string | undefined): string | undefined {
  if (value !== undefined && !isValidId(value)) {
    throw new UsageError(`--${flag}: expected an id of letters, digits, '-' or '_', got '${value}'`);
  }
  return value;
}

/**
 * Subject filters that cover the request (a node's events include those peers relayed for it);
 * the rest is matched on the decoded event.
 */
export function eventFilters(rolloutId?: string, nodeId?: string): string[] {
  if (rolloutId && nodeId)
    return [...nodeEventsFilters(nodeId), `slotflow.evt.rollout.${rolloutId}.NodeUpgradeFinished`];
  if (rolloutId) return [rolloutEventsFilter(rolloutId), ...nodeEventsFilters()];
  if (nodeId) return [...nodeEventsFilters(nodeId), `slotflow.evt.rollout.*.NodeUpgradeFinished`];
  return ['slotflow.evt.>'];
}

/** True when the event concerns the requested rollout and node. */
export function eventMatches(event: DomainEvent, rolloutId?: string, nodeId?: string): boolean {
  if (rolloutId && ('rolloutId' in event ? event.rolloutId : undefined) !== rolloutId) return false;
  if (nodeId && ('nodeId' in event ? event.nodeId : undefined) !== nodeId) return false;
  return true;
}

const SKIP = new Set(['v', 'id', 'at', 'type', 'rolloutId', 'nodeId', 'spec', 'manifest', 'commandId']);

/** The node that relayed a stored event into the log, for one a peer carried there. */
export function relayerOf(logged: Pick<LoggedEvent, 'subject'>): string | undefined {
  return parseNodeSubject(logged.subject)?.relayerId;
}

/**
 * Skips relayed copies of events already shown: many peers may relay one event, and a copy
 * stored after the stream's de-duplication window is still the same event.
 */
export function createRelayCopyFilter(): (logged: LoggedEvent) => boolean {
  const shown = new Set<string>();
  return (logged) => {
    if (!parseNodeSubject(logged.subject)) return true;
    if (relayerOf(logged) !== undefined && shown.has(logged.event.id)) return false;
    shown.add(logged.event.id);
    return true;
  };
}

/** One human-readable line per event. */
export function formatEvent(logged: LoggedEvent): string {
  const { seq, event } = logged;
  const relayer = relayerOf(logged);
  const about = [
    'rolloutId' in event && event.rolloutId ? `rollout=${event.rolloutId}` : '',
    'nodeId' in event ? `node=${event.nodeId}` : '',
    relayer ? `relayed-by=${relayer}` : '',
  ]
    .filter(Boolean)
    .join(' ');
  const details = Object.entries(event)
    .filter(([k, v]) => !SKIP.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' ');
  return `${String(seq).padStart(6)}  ${event.at}  ${event.type.padEnd(24)} ${about}${details ? `  ${details}` : ''}`;
}

/** One human-readable line per refused event. */
export function formatRejection(r: RejectionRecord): string {
  return `${String(r.streamSeq).padStart(6)}  ${r.rejectedAt}  ${r.type.padEnd(24)} node=${r.nodeId} reason=${r.reason} by=${r.by}  ${r.message}`;
}

/** `slotflow events`: read (and follow) the event log. */
export const events: Command = {
  path: ['events'],
  usage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      {
        follow: { type: 'boolean' },
        rollout: { type: 'string' },
        node: { type: 'string' },
        from: { type: 'string' },
        rejected: { type: 'boolean' },
        json: { type: 'boolean' },
      },
      usage,
    );
    if (values.rejected) {
      if (values.follow || values.rollout || values.from) {
        throw new UsageError(
          `--rejected lists refused node events; it takes only --node and --json\nusage: ${usage}`,
        );
      }
      const nodeId = checkId('node', values.node);
      const records = await withNats(cliConfig(), async (nc) =>
        listRejections(await openRejectionBucket(nc), nodeId),
      );
      for (const r of records)
        process.stdout.write(values.json ? `${JSON.stringify(r)}\n` : `${formatRejection(r)}\n`);
      if (!values.json && records.length === 0) process.stderr.write('no refused node events\n');
      return 0;
    }
    const rolloutId = checkId('rollout', values.rollout);
    const nodeId = checkId('node', values.node);
    const fromSeq = values.from === undefined ? 1 : Number(values.from);
    if (!Number.isInteger(fromSeq) || fromSeq < 1) {
      throw new UsageError(`--from: expected a stream sequence number >= 1, got '${values.from}'`);
    }
    const config = cliConfig();
    await withNats(config, async (nc) => {
      const log = await openEventLog(nc);
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const options = {
        fromSeq,
        filters: eventFilters(rolloutId, nodeId),
        signal: stop.signal,
        onInvalid: (e: { seq: number; subject: string; problem: string }) =>
          process.stderr.write(`slotflow: skipping invalid entry ${e.seq} on ${e.subject}: ${e.problem}\n`),
      };
      const firstCopy = createRelayCopyFilter();
      try {
        for await (const logged of values.follow ? log.follow(options) : log.replay(options)) {
          if (!eventMatches(logged.event, rolloutId, nodeId) || !firstCopy(logged)) continue;
          const relayedBy = relayerOf(logged);
          process.stdout.write(
            values.json
              ? `${JSON.stringify({ seq: logged.seq, event: logged.event, ...(relayedBy ? { relayedBy } : {}) })}\n`
              : `${formatEvent(logged)}\n`,
          );
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
    return 0;
  },
};
