import type { SubscriptionChangeData } from '@libp2p/gossipsub';
import type { Logger } from 'pino';
import { LeaseReport, describeIssues } from '../../schema/index.ts';
import { describeError } from '../errors.ts';
import type { PeerBindings } from '../gossip/bindings.ts';
import { createTopicChannel, type TopicStats, type Verdict } from '../gossip/topic.ts';
import type { P2pNode } from '../node.ts';
import { LEASE_TOPIC } from '../topics.ts';
import { loadOwnReports, saveOwnReports } from './own-reports.ts';
import type { NodeReports } from './schedule.ts';

/** Lease reports over `slotflow/lease/1`, collected per rollout. */
export interface LeaseGossip {
  /** Reports seen so far for a rollout (this node's own included). */
  reports(rolloutId: string): ReadonlyMap<string, NodeReports>;
  /**
   * Publishes one of this node's reports, keeps it on disk and re-announces it: every few
   * seconds and whenever a peer joins the topic, so a peer that missed it (not connected yet,
   * rebooting, started late) still learns it.
   */
  publish(report: LeaseReport): Promise<void>;
  /** Calls the listener whenever a new report arrives; returns the unsubscribe. */
  onReport(listener: (report: LeaseReport) => void): () => void;
  /** Stops re-announcing a rollout's reports and forgets them. */
  forget(rolloutId: string): Promise<void>;
  readonly stats: TopicStats;
  start(): Promise<void>;
  stop(): void;
}

/**
 * Reports are accepted only from the peer enrolled as the reported node (see PeerBindings), so a
 * peer cannot finish someone else's turn early, and a peer that is no enrolled node cannot
 * report at all. A later copy of a report changes nothing.
 * This node's own reports survive a restart (`file`): a node that reports and then reboots
 * goes on announcing what it reported.
 */
export function createLeaseGossip(init: {
  node: P2pNode;
  nodeId: string;
  bindings: PeerBindings;
  /** Where this node's own reports are kept across restarts; none: in memory only. */
  file?: string;
  republishIntervalMs?: number;
  log?: Logger;
}): LeaseGossip {
  const log = init.log ?? init.node.log.child({ name: 'p2p:lease' });
  const byRollout = new Map<string, Map<string, NodeReports>>();
  const own = new Map<string, LeaseReport[]>();
  const listeners = new Set<(r: LeaseReport) => void>();
  let timer: NodeJS.Timeout | undefined;
  let soon: NodeJS.Timeout | undefined;
  let saving = Promise.resolve();

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

  function check(data: unknown, author: string, authorNode: string | undefined): Verdict<LeaseReport> {
    const parsed = LeaseReport.safeParse(data);
    if (!parsed.success) {
      return {
        type: 'reject',
        reason: `malformed lease report: ${describeIssues(parsed.error.issues, data).join('; ')}`,
      };
    }
    if (authorNode !== parsed.data.nodeId) {
      return {
        type: 'reject',
        reason: `peer ${author}, enrolled as node ${authorNode}, reported for node ${parsed.data.nodeId} (enrolled as peer ${init.bindings.peerOf(parsed.data.nodeId) ?? 'none seen'})`,
      };
    }
    return { type: 'accept', value: parsed.data };
  }

  const channel = createTopicChannel({
    node: init.node,
    topic: LEASE_TOPIC,
    log,
    enrolled: init.bindings,
    check: (data, author, _msg, authorNode) => check(data, author, authorNode),
    deliver: (r) => void record(r),
  });

  /** Writes the own reports (one write at a time, in order). */
  function persist(): Promise<void> {
    const file = init.file;
    if (!file) return Promise.resolve();
    const snapshot = [...own.values()].flat();
    saving = saving
      .then(() => saveOwnReports(file, snapshot))
      .catch((err: unknown) =>
        log.warn({ err: describeError(err), file }, 'cannot keep the lease reports on disk'),
      );
    return saving;
  }

  function announce(why: string): void {
    const reports = [...own.values()].flat();
    if (reports.length === 0) return;
    log.debug({ why, reports: reports.length }, 're-announcing lease reports');
    for (const r of reports) {
      channel
        .publish(r)
        .catch((err: unknown) =>
          log.debug({ err: describeError(err) }, 're-announcement of a lease report failed'),
        );
    }
  }

  // A peer that (re)joins the topic gets the reports at once rather than at the next interval.
  const onSubscription = (evt: CustomEvent<SubscriptionChangeData>): void => {
    if (!evt.detail.subscriptions.some((s) => s.topic === LEASE_TOPIC && s.subscribe)) return;
    if (soon) return;
    soon = setTimeout(() => {
      soon = undefined;
      announce('a peer joined the lease topic');
    }, 100);
    soon.unref();
  };

  return {
    stats: channel.stats,
    reports: (rolloutId) => byRollout.get(rolloutId) ?? new Map(),
    async publish(report) {
      if (report.nodeId !== init.nodeId)
        throw new Error(`expected a report of this node (${init.nodeId}), got ${report.nodeId}`);
      if (!record(report)) return; // already reported (and re-announced)
      const list = own.get(report.rolloutId) ?? [];
      list.push(report);
      own.set(report.rolloutId, list);
      await persist();
      await channel.publish(report);
    },
    onReport(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async forget(rolloutId) {
      byRollout.delete(rolloutId);
      if (own.delete(rolloutId)) await persist();
    },
    async start() {
      if (init.file) {
        for (const report of await loadOwnReports(init.file, init.nodeId, log)) {
          if (!record(report)) continue;
          const list = own.get(report.rolloutId) ?? [];
          list.push(report);
          own.set(report.rolloutId, list);
        }
      }
      channel.attach();
      init.node.pubsub.addEventListener('subscription-change', onSubscription);
      timer ??= setInterval(() => announce('interval'), init.republishIntervalMs ?? 5_000);
      timer.unref();
      announce('start');
    },
    stop() {
      channel.detach();
      init.node.pubsub.removeEventListener('subscription-change', onSubscription);
      if (timer) clearInterval(timer);
      if (soon) clearTimeout(soon);
      timer = soon = undefined;
    },
  };
}
