import { generateKeyPairSync, randomUUID } from 'node:crypto';
import type { EventLog } from '../eventlog/index.ts';
import { NodeEvent, type DomainEventInput, type TrustEvent } from '../schema/index.ts';
import {
  issueEnrolment,
  keyIdOf,
  peerIdOfPublicKey,
  signNodeEvent,
  signTrustEvent,
  type NodeIdentity,
  type SigningKey,
} from '../signing/index.ts';

const NODE_EVENT_TYPES: ReadonlySet<string> = new Set(NodeEvent.options.map((o) => o.shape.type.value));

type NodeEnrolledEvent = Extract<TrustEvent, { type: 'NodeEnrolled' }>;

/** A fresh node identity held in memory (a simulated node has no data dir). */
export function newNodeIdentity(): NodeIdentity {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url').toString('base64');
  return { keyId: keyIdOf(publicKey), publicKey: raw, peerId: peerIdOfPublicKey(raw), privateKey };
}

/** The control plane's pre-authorised enrolment of `identity` as `nodeId`. */
export function enrolmentEvent(
  nodeId: string,
  identity: NodeIdentity,
  controlPlaneKey: SigningKey,
  at = new Date(),
): NodeEnrolledEvent {
  const certificate = issueEnrolment({ nodeId, publicKey: identity.publicKey }, controlPlaneKey, at);
  return signTrustEvent<NodeEnrolledEvent>(
    {
      v: 1,
      id: randomUUID(),
      at: at.toISOString(),
      type: 'NodeEnrolled',
      nodeId,
      by: 'simulator',
      how: 'preauthorized',
      certificate,
    },
    controlPlaneKey,
  );
}

/** Numbers (from 1) and signs a node's events, as its agent does. */
export function eventSigner(identity: NodeIdentity): (event: DomainEventInput) => DomainEventInput {
  let seq = 0;
  return (event) => signNodeEvent({ ...(event as NodeEvent), seq: ++seq }, identity);
}

/** A simulated node's identity: enrolled by the control plane, numbering and signing its events. */
export interface SimulatedIdentity {
  readonly identity: NodeIdentity;
  /** The event with the node's next number and its signature. */
  sign(event: DomainEventInput): DomainEventInput;
}

/**
 * Makes a key for `nodeId` in memory and records its pre-authorised enrolment (a NodeEnrolled
 * signed by the control plane's key), as `slotflow node preauthorize` does for a real agent.
 */
export async function enrolSimulatedNode(
  log: EventLog,
  controlPlaneKey: SigningKey,
  nodeId: string,
): Promise<SimulatedIdentity> {
  const identity = newNodeIdentity();
  await log.append(enrolmentEvent(nodeId, identity, controlPlaneKey));
  return { identity, sign: eventSigner(identity) };
}

/**
 * A story of events as enrolled nodes tell it: each node's enrolment first, then every event,
 * node events numbered and signed by their node. For tests and benchmarks of the readers.
 */
export function signedStory(
  events: readonly DomainEventInput[],
  controlPlaneKey: SigningKey,
): DomainEventInput[] {
  const signers = new Map<string, (e: DomainEventInput) => DomainEventInput>();
  const enrolments: DomainEventInput[] = [];
  const at = new Date(
    Date.parse((events[0] as { at?: string } | undefined)?.at ?? '2026-01-01T00:00:00Z') - 1000,
  );
  const signed = events.map((event) => {
    const e = event as { type: string; nodeId?: string };
    if (!e.nodeId || !NODE_EVENT_TYPES.has(e.type)) return event;
    let sign = signers.get(e.nodeId);
    if (!sign) {
      const identity = newNodeIdentity();
      enrolments.push(enrolmentEvent(e.nodeId, identity, controlPlaneKey, at));
      sign = eventSigner(identity);
      signers.set(e.nodeId, sign);
    }
    return sign(event);
  });
  return [...enrolments, ...signed];
}
