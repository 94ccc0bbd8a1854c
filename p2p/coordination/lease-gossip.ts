import type { Logger } from 'pino';
import { LeaseReport, describeIssues } from '../../schema/index.ts';
import { describeError } from '../errors.ts';
import type { PeerBindings } from '../gossip/bindings.ts';
import { createTopicChannel, type TopicStats, type Verdict } from '../gossip/topic.ts';
import type { P2pNode } from '../node.ts';
import { LEASE_TOPIC } from '../topics.ts';
import type { NodeReports } from './schedule.ts';

/** Lease reports over `slotflow/lease/1`, collected per rollout. */
export interface LeaseGossip {
  /** Reports seen so far for a rollout (this node's own included). */
  reports(rolloutId: string): ReadonlyMap<string, NodeReports>;
  /** Publishes one of this node's reports and keeps re-gossiping it (for late joiners). */
  publish(report: LeaseReport): Promise<void>;
  /** Calls the listener whenever a new report arrives; returns the unsubscribe. */
  onReport(listener: (report: LeaseReport) => void): () => void;
  /** Stops re-gossiping a rollout's reports and forgets them. */
  forget(rolloutId: string): void;
  readonly stats: TopicStats;
  start(): void;
  stop(): void;
}

/**
 * Reports are accepted only from the peer bound to the reported node (see PeerBindings), so a
 * peer cannot finish someone else's turn early. A later copy of a report changes nothing.
 */
export function createLeaseGossip(init: {
  node: P2pNode;
  nodeId: string;
  bindings: PeerBindings;
  republishIntervalMs?: number;
  log?: Logger;
}): LeaseGossip {
  const log = init.log ?? init.node.log.child({ name: 'p2p:lease' });
  const byRollout = new Map<string, Map<string, NodeReports>>();
  const own = new Map<string, LeaseReport[]>();
  const listeners = new Set<(r: LeaseReport) => void>();
  let timer: NodeJS.Timeout | undefined;

  function record(report: LeaseReport): boolean {
    let nodes = byRollout.get(report.rolloutId);
    if (!nodes) byRollout.set(report.rolloutId, (nodes = new Map()));
    let r = nodes.get(report.nodeId);
    if (!r) nodes.set(report.nodeId, (r = {}));
    if (report.type === 'started') {
      if (r.started) return false;
      r.started = report;
    } else {
      if (r.done) return false;
      r.done = report;
    }
    for (const l of listeners) l(report);
    return true;
  }

  function check(data: unknown, author: string): Verdict<LeaseReport> {
    const parsed = LeaseReport.safeParse(data);
    if (!parsed.success) {
      return {
        type: 'reject',
        reason: `malformed lease report: ${describeIssues(parsed.error.issues, data).join('; ')}`,
      };
    }
    if (!init.bindings.claim(parsed.data.nodeId, author)) {
      return {
        type: 'reject',
        reason: `peer ${author} reported for node ${parsed.data.nodeId}, which is bound to peer ${init.bindings.peerOf(parsed.data.nodeId)}`,
      };
    }
    return { type: 'accept', value: parsed.data };
  }

  const channel = createTopicChannel({
    node: init.node,
    topic: LEASE_TOPIC,
    log,
    check,
    deliver: (r) => void record(r),
  });

  return {
    stats: channel.stats,
    reports: (rolloutId) => byRollout.get(rolloutId) ?? new Map(),
    async publish(report) {
      if (report.nodeId !== init.nodeId)
        throw new Error(`expected a report of this node (${init.nodeId}), got ${report.nodeId}`);
      if (!record(report)) return; // already reported (and re-gossiped)
      const list = own.get(report.rolloutId) ?? [];
      list.push(report);
      own.set(report.rolloutId, list);
      await channel.publish(report);
    },
    onReport(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    forget(rolloutId) {
      byRollout.delete(rolloutId);
      own.delete(rolloutId);
    },
    start() {
      channel.attach();
      timer ??= setInterval(() => {
        for (const reports of own.values()) {
          for (const r of reports) {
            channel
              .publish(r)
              .catch((err: unknown) =>
                log.debug({ err: describeError(err) }, 're-gossip of a lease report failed'),
              );
          }
        }
      }, init.republishIntervalMs ?? 5_000);
      timer.unref();
    },
    stop() {
      channel.detach();
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
