// Signed node events for tests of the readers (reducers, projector, bridge): a control-plane
// key made in memory, nodes enrolled by it, and each node's events numbered and signed.
import { generateKeyPairSync } from 'node:crypto';
import type { EventLog } from '../../eventlog/index.ts';
import { DomainEvent, isNodeEvent, type DomainEventInput } from '../../schema/index.ts';
import {
  keyIdOf,
  trustKeys,
  type NodeIdentity,
  type SigningKey,
  type TrustedKeys,
} from '../../signing/index.ts';
import { enrolmentEvent, eventSigner, newNodeIdentity } from '../../simulator/identity.ts';

/** A control-plane signing key held in memory. */
export function testControlPlaneKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { keyId: keyIdOf(publicKey), privateKey, publicKey };
}

/** A control plane and the nodes it enrolled, for writing signed event stories. */
export class SignedFleet {
  readonly key: SigningKey;
  readonly trustedKeys: TrustedKeys;
  readonly identities = new Map<string, NodeIdentity>();
  readonly #signers = new Map<string, (e: DomainEventInput) => DomainEventInput>();

  constructor(key: SigningKey = testControlPlaneKey()) {
    this.key = key;
    this.trustedKeys = trustKeys(key.publicKey);
  }

  /** The NodeEnrolled event of a new key for `nodeId`. */
  enrol(nodeId: string, at = new Date('2026-11-22T09:00:00.000Z')): DomainEvent {
    const identity = newNodeIdentity();
    this.identities.set(nodeId, identity);
    this.#signers.set(nodeId, eventSigner(identity));
    return DomainEvent.parse(enrolmentEvent(nodeId, identity, this.key, at));
  }

  /** The event numbered and signed by its (enrolled) node. */
  sign(event: DomainEventInput): DomainEvent {
    const nodeId = (event as { nodeId: string }).nodeId;
    const sign = this.#signers.get(nodeId);
    if (!sign) throw new Error(`enrol ${nodeId} first`);
    return DomainEvent.parse(sign(event));
  }
}

/**
 * The event log as enrolled nodes write to it: the first event of a node records its
 * pre-authorised enrolment (signed by `key`), and every node event is numbered and signed by
 * its node. Rollout events go through unchanged. For tests that tell a node's side in events.
 */
export function signingLog(log: EventLog, key: SigningKey): EventLog {
  const signers = new Map<string, (e: DomainEventInput) => DomainEventInput>();
  function prepare(event: DomainEventInput): DomainEventInput[] {
    const nodeId = (event as { nodeId?: string }).nodeId;
    if (!nodeId || !isNodeEvent(DomainEvent.parse(event))) return [event];
    let sign = signers.get(nodeId);
    const out: DomainEventInput[] = [];
    if (!sign) {
      const identity = newNodeIdentity();
      out.push(enrolmentEvent(nodeId, identity, key));
      sign = eventSigner(identity);
      signers.set(nodeId, sign);
    }
    out.push(sign(event));
    return out;
  }
  const appendBatch = async (events: readonly DomainEventInput[]) => {
    const prepared = events.map(prepare);
    const results = await log.appendBatch(prepared.flat());
    // One result per given event: the last of its prepared group.
    let at = -1;
    return prepared.map((group) => results[(at += group.length)]!);
  };
  return { ...log, appendBatch, append: async (event) => (await appendBatch([event]))[0]! };
}
