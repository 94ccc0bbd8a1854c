import type { DomainEvent } from './events.ts';
import { isNodeEvent, isTrustEvent } from './events.ts';

/** Stream of every domain event; the source of truth for fleet and rollout state. */
export const EVENTS_STREAM = 'SLOTFLOW_EVENTS';
/** Stream of signed commands to nodes, one durable consumer per node. */
export const COMMANDS_STREAM = 'SLOTFLOW_COMMANDS';
/** KV bucket holding the materialised fleet and rollout projections. */
export const PROJECTION_BUCKET = 'slotflow-projection';
/** Object store bucket holding built slot images. */
export const IMAGES_BUCKET = 'slotflow-images';

/** KV bucket of enrolment certificates by node id; an agent waiting for acceptance watches its key. */
export const ENROLMENTS_BUCKET = 'slotflow-enrolments';
/** KV bucket of refused node events (`slotflow events --rejected`), keyed `<nodeId>.<stream seq>`. */
export const REJECTIONS_BUCKET = 'slotflow-rejections';
/**
 * KV bucket of the event bridge's trust checkpoint (the trust gate's state at a stream sequence,
 * signed by the control plane), so a worker does not replay the log from sequence 1 at start.
 * Only the worker may write it (stack/nats-permissions.ts).
 */
export const TRUST_CHECKPOINT_BUCKET = 'slotflow-trust-checkpoint';

/** Stream of signed rollout plans, the latest one per rollout. */
export const PLANS_STREAM = 'SLOTFLOW_PLANS';

export const EVENTS_SUBJECTS = 'slotflow.evt.>';
export const PLANS_SUBJECTS = 'slotflow.plan.*';
export const COMMANDS_SUBJECTS = 'slotflow.cmd.*';

/** Subject for an event about a rollout. */
export function rolloutEventSubject(rolloutId: string, type: string): string {
  return `slotflow.evt.rollout.${rolloutId}.${type}`;
}

/** Subject for an event a node reports. */
export function nodeEventSubject(nodeId: string, type: string): string {
  return `slotflow.evt.node.${nodeId}.${type}`;
}

/**
 * Subject of a node's event relayed into the log by another node (`relayerId`) that heard it over
 * the peer mesh. The event is the author's, signed by the author; the subject only says who
 * carried it, so nats-server can let each node publish relays under its own id alone.
 */
export function relayEventSubject(authorId: string, relayerId: string, type: string): string {
  return `slotflow.evt.relay.${authorId}.${relayerId}.${type}`;
}

/** Filter subject for relayed events of one author (`*` for all) carried by one relayer (`*` for all). */
export function relayEventsFilter(authorId = '*', relayerId = '*'): string {
  return `slotflow.evt.relay.${authorId}.${relayerId}.>`;
}

/** Filter subjects for every copy of one node's events (`*` for all nodes): direct and relayed. */
export function nodeEventsFilters(nodeId = '*'): string[] {
  return [nodeEventsFilter(nodeId), relayEventsFilter(nodeId)];
}

/** Who a node-event subject names: its author, and the relayer for a relayed copy. */
export interface NodeSubject {
  readonly authorId: string;
  readonly relayerId?: string;
  readonly type: string;
}

/** The author (and relayer) a node or relay event subject names; undefined for other subjects. */
export function parseNodeSubject(subject: string): NodeSubject | undefined {
  const parts = subject.split('.');
  if (parts[0] !== 'slotflow' || parts[1] !== 'evt') return undefined;
  if (parts[2] === 'node' && parts.length === 5) return { authorId: parts[3]!, type: parts[4]! };
  if (parts[2] === 'relay' && parts.length === 6)
    return { authorId: parts[3]!, relayerId: parts[4]!, type: parts[5]! };
  return undefined;
}

/** Subject of a control-plane enrolment decision; no node may publish here. */
export function trustEventSubject(nodeId: string, type: string): string {
  return `slotflow.evt.trust.${nodeId}.${type}`;
}

/** Filter subject for trust events about one node (`*` for all nodes). */
export function trustEventsFilter(nodeId = '*'): string {
  return `slotflow.evt.trust.${nodeId}.>`;
}

/** The subject an event is published on. */
export function eventSubject(event: DomainEvent): string {
  if (isNodeEvent(event)) return nodeEventSubject(event.nodeId, event.type);
  if (isTrustEvent(event)) return trustEventSubject(event.nodeId, event.type);
  return rolloutEventSubject(event.rolloutId, event.type);
}

/** Filter subject for all events of one rollout (`*` for all rollouts). */
export function rolloutEventsFilter(rolloutId = '*'): string {
  return `slotflow.evt.rollout.${rolloutId}.>`;
}

/** Filter subject for all events of one node (`*` for all nodes). */
export function nodeEventsFilter(nodeId = '*'): string {
  return `slotflow.evt.node.${nodeId}.>`;
}

/** Subject a node's commands are published on. */
export function commandSubject(nodeId: string): string {
  return `slotflow.cmd.${nodeId}`;
}

/** Subject a rollout's signed plan is published on (the stream keeps the latest). */
export function planSubject(rolloutId: string): string {
  return `slotflow.plan.${rolloutId}`;
}

/**
 * The reply-subject prefix a node's connection uses (nats.js `inboxPrefix`): nats-server lets a
 * node subscribe only under it, so no node reads another's replies.
 */
export function nodeInboxPrefix(nodeId: string): string {
  return `_INBOX.node.${nodeId}`;
}

/** Name of the durable consumer that delivers one node's commands. */
export function commandConsumerName(nodeId: string): string {
  return `node-${nodeId}`;
}
