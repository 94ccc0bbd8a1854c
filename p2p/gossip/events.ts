import type { Logger } from 'pino';
import { EventGossip, describeIssues, type NodeEvent } from '../../schema/index.ts';
import type { P2pNode } from '../node.ts';
import { EVENTS_TOPIC } from '../topics.ts';
import type { PeerBindings } from './bindings.ts';
import { createTopicChannel, type TopicStats, type Verdict } from './topic.ts';

/** Node events over `slotflow/events/1`. */
export interface EventGossipService {
  /** Gossips one of this node's events (the outbox keeps it until NATS acknowledges it). */
  publish(event: NodeEvent): Promise<void>;
  /** Registers a listener for peers' events that passed validation; returns the unsubscribe. */
  onEvent(listener: (event: NodeEvent, author: string) => void | Promise<void>): () => void;
  readonly stats: TopicStats;
  start(): void;
  stop(): void;
}

/**
 * Events are facts only their node may state: a message is accepted when it is a valid node
 * event and its author (the libp2p peer that signed the gossip message) is enrolled as that node
 * (its enrolment certificate, signed by the control plane, names the node and the peer).
 */
export function createEventGossip(init: {
  node: P2pNode;
  nodeId: string;
  bindings: PeerBindings;
  log?: Logger;
}): EventGossipService {
  const log = init.log ?? init.node.log.child({ name: 'p2p:events' });
  const listeners = new Set<(event: NodeEvent, author: string) => void | Promise<void>>();

  function check(data: unknown, author: string, authorNode: string | undefined): Verdict<NodeEvent> {
    const parsed = EventGossip.safeParse(data);
    if (!parsed.success) {
      return {
        type: 'reject',
        reason: `malformed event gossip: ${describeIssues(parsed.error.issues, data).join('; ')}`,
      };
    }
    const event = parsed.data.event;
    if (authorNode !== event.nodeId) {
      return {
        type: 'reject',
        reason: `peer ${author}, enrolled as node ${authorNode}, published an event of node ${event.nodeId} (enrolled as peer ${init.bindings.peerOf(event.nodeId) ?? 'none seen'})`,
      };
    }
    return { type: 'accept', value: event };
  }

  const channel = createTopicChannel<NodeEvent>({
    node: init.node,
    topic: EVENTS_TOPIC,
    log,
    enrolled: init.bindings,
    check: (data, author, _msg, authorNode) => check(data, author, authorNode),
    async deliver(event, author) {
      for (const l of listeners) await l(event, author);
    },
  });

  return {
    stats: channel.stats,
    async publish(event) {
      if (event.nodeId !== init.nodeId) {
        throw new Error(
          `expected an event of this node (${init.nodeId}), got one of ${event.nodeId}; peers would reject it`,
        );
      }
      await channel.publish({ v: 1, event } satisfies EventGossip);
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    start: () => channel.attach(),
    stop: () => channel.detach(),
  };
}
