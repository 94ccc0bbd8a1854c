import type { KeyObject } from 'node:crypto';
import {
  CONTROL_PLANE_ID,
  isNodeEvent,
  isTrustEvent,
  parseNodeSubject,
  type DomainEvent,
  type EnrolmentCertificate,
  type Labels,
  type NodeEvent,
  type RejectionReason,
  type TrustEvent,
} from '../schema/index.ts';
import {
  checkTrustEvent,
  keyIdOf,
  nodePublicKey,
  peerIdOfPublicKey,
  verifyEnrolment,
  verifyNodeEvent,
  type TrustedKeys,
} from '../signing/index.ts';
import { acceptSeq, EMPTY_WINDOW, type ReplayWindow } from './replay-window.ts';

/** Where a node stands with the control plane (Mender's device authorization states). */
export type TrustStatus = 'pending' | 'enrolled' | 'rejected' | 'revoked';

/** What the control plane knows of one node's identity; plain data, stored with the projection. */
export interface NodeTrust {
  nodeId: string;
  status: TrustStatus;
  /** The node's raw ed25519 public key (base64): enrolled, or presented in its request. */
  publicKey: string;
  keyId: string;
  /** The libp2p peer id that follows from the key. */
  peerId: string;
  /** Labels the node asked to be enrolled with. */
  labels?: Labels | undefined;
  how?: 'preauthorized' | 'accepted' | undefined;
  certificate?: EnrolmentCertificate | undefined;
  requestedAt?: string | undefined;
  /** When the current status was decided (event time) and where in the log. */
  since: string;
  sinceSeq: number;
  /** Anti-replay state of the node's signed event numbers. */
  window: ReplayWindow;
  /** Stream sequence of the last event that changed this entry (a stored copy reflects it). */
  appliedSeq?: number | undefined;
}

/** Every node the trust authority has heard of, by id, and the control-plane keys it retired. */
export interface TrustState {
  nodes: Map<string, NodeTrust>;
  /** Control-plane key id → stream sequence of its ControlPlaneKeyRetired. */
  retiredKeys: Map<string, number>;
}

export function emptyTrustState(): TrustState {
  return { nodes: new Map(), retiredKeys: new Map() };
}

/** The outcome for one event: let it through, or why it is refused. */
export type TrustVerdict =
  | { readonly ok: true; readonly changed: boolean }
  | { readonly ok: false; readonly reason: RejectionReason; readonly message: string };

const keys = new Map<string, KeyObject>();
function keyOf(publicKey: string): KeyObject {
  let key = keys.get(publicKey);
  if (!key) {
    key = nodePublicKey(publicKey);
    if (keys.size > 100_000) keys.clear();
    keys.set(publicKey, key);
  }
  return key;
}

const refuse = (reason: RejectionReason, message: string): TrustVerdict => ({ ok: false, reason, message });
const pass = (changed: boolean): TrustVerdict => ({ ok: true, changed });

/**
 * Pure over the state (it changes only `state`): decides one event of SLOTFLOW_EVENTS, in stream
 * order, and applies it. Rollout events pass. Trust events must carry a trusted control-plane
 * signature. A node's enrolment request must be signed by the key it presents. Every other node
 * event must come from an enrolled node, be signed by its enrolled key and carry an event number
 * not accepted before. A revocation applies from its position in the log on, so replaying the log
 * from sequence 1 gives the same verdicts as the live bridge and projector. So does a retired
 * control-plane key: `trustedKeys` holds every key the control plane ever had, and what a key
 * signed counts only where it stands in the log before that key's ControlPlaneKeyRetired.
 *
 * `subject`, where the event was stored: a node's event is stored under its author's id, directly
 * or relayed by a peer (`slotflow.evt.relay.<author>.<relayer>.<Type>`), and is judged the same
 * way either way; one filed under another node's id is refused, so readers that select a node's
 * events by subject see all of them and no one else's. A relayed copy of an event already
 * accepted is refused as `duplicate-relay`, which is expected with many relays and not an attack.
 */
export function applyTrust(
  state: TrustState,
  seq: number,
  event: DomainEvent,
  trustedKeys: TrustedKeys,
  subject?: string,
): TrustVerdict {
  if (isTrustEvent(event)) return applyDecision(state, seq, event, trustedKeys);
  if (!isNodeEvent(event)) return pass(false);
  const what = `${event.type} ${event.id} from ${event.nodeId}`;
  const filed = subject === undefined ? undefined : parseNodeSubject(subject);
  if (filed && filed.authorId !== event.nodeId) {
    return refuse(
      'malformed',
      `${what} was stored on ${subject}, under node ${filed.authorId}; a node's event belongs under its author's id`,
    );
  }
  if (event.type === 'NodeEnrollmentRequested') return applyRequest(state, seq, event);
  if (event.nodeId === CONTROL_PLANE_ID)
    return refuse('malformed', `${event.type} ${event.id}: node id ${CONTROL_PLANE_ID} is reserved`);
  const node = state.nodes.get(event.nodeId);
  if (!node) return refuse('unknown-node', `${what}: the node is not enrolled (no request, no enrolment)`);
  if (node.status !== 'enrolled') {
    const reason = node.status === 'pending' ? 'pending' : node.status;
    return refuse(reason, `${what}: the node is ${node.status} since ${node.since}`);
  }
  const check = verifyNodeEvent(event, { keyId: node.keyId, key: keyOf(node.publicKey) });
  if (!check.ok) return refuse(check.reason, check.message);
  if (event.seq === undefined) return refuse('no-sequence', `${what} is signed but carries no event number`);
  const window = acceptSeq(node.window, event.seq);
  if (!window.ok && window.why === 'repeat' && filed?.relayerId !== undefined) {
    return refuse('duplicate-relay', `${what} relayed by ${filed.relayerId}: ${window.message}`);
  }
  if (!window.ok) return refuse('replayed', `${what}: ${window.message}`);
  node.window = window.window;
  return pass(false);
}

function applyRequest(
  state: TrustState,
  seq: number,
  event: Extract<NodeEvent, { type: 'NodeEnrollmentRequested' }>,
): TrustVerdict {
  const what = `enrolment request ${event.id} from ${event.nodeId}`;
  let key: KeyObject;
  try {
    key = keyOf(event.publicKey);
  } catch (err) {
    return refuse('malformed', `${what}: ${(err as Error).message}`);
  }
  const keyId = keyIdOf(key);
  const check = verifyNodeEvent(event, { keyId, key });
  if (!check.ok)
    return refuse(check.reason, `${what} is not signed by the key it presents: ${check.message}`);
  const node = state.nodes.get(event.nodeId);
  if (node?.status === 'revoked') return refuse('revoked', `${what}: the node was revoked at ${node.since}`);
  if (node?.status === 'enrolled') {
    // An agent that restarted before it fetched its certificate asks again: nothing to do.
    if (node.keyId === keyId) return pass(false);
    return refuse(
      'wrong-key',
      `${what} presents key ${keyId}, the node is enrolled with ${node.keyId}; revoke it first to enrol a new key`,
    );
  }
  if (node?.status === 'pending' && node.keyId === keyId) return pass(false);
  state.nodes.set(event.nodeId, {
    nodeId: event.nodeId,
    status: 'pending',
    publicKey: event.publicKey,
    keyId,
    peerId: peerIdOfPublicKey(event.publicKey),
    labels: event.labels,
    requestedAt: event.at,
    since: event.at,
    sinceSeq: seq,
    window: EMPTY_WINDOW,
  });
  return pass(true);
}

/** Why `keyId` may sign no more, when the log has retired it. */
function retiredAt(state: TrustState, keyId: string): string | undefined {
  const seq = state.retiredKeys.get(keyId);
  return seq === undefined ? undefined : `control-plane key ${keyId}, retired at sequence ${seq}`;
}

function applyDecision(
  state: TrustState,
  seq: number,
  event: TrustEvent,
  trustedKeys: TrustedKeys,
): TrustVerdict {
  const bad = checkTrustEvent(event, trustedKeys);
  if (bad) return refuse('bad-issuer', bad);
  const retired = retiredAt(state, event.issuer.keyId);
  if (retired) return refuse('bad-issuer', `${event.type} ${event.id} is signed by ${retired}`);
  if (event.type === 'ControlPlaneKeyRetired') {
    if (event.keyId === event.issuer.keyId) {
      return refuse('malformed', `${event.type} ${event.id}: key ${event.keyId} cannot retire itself`);
    }
    if (state.retiredKeys.has(event.keyId)) return pass(false);
    state.retiredKeys.set(event.keyId, seq);
    return pass(true);
  }
  const node = state.nodes.get(event.nodeId);
  switch (event.type) {
    case 'NodeEnrolled': {
      if (event.nodeId === CONTROL_PLANE_ID)
        return refuse('malformed', `${event.type} ${event.id}: node id ${CONTROL_PLANE_ID} is reserved`);
      const cert = verifyEnrolment(event.certificate, trustedKeys);
      if (!cert.ok) return refuse('bad-issuer', `${event.type} ${event.id}: ${cert.message}`);
      const certRetired = retiredAt(state, cert.certificate.issuer.keyId);
      if (certRetired) {
        return refuse('bad-issuer', `${event.type} ${event.id}: its certificate is signed by ${certRetired}`);
      }
      if (cert.certificate.nodeId !== event.nodeId) {
        return refuse(
          'malformed',
          `${event.type} ${event.id} is about ${event.nodeId} but its certificate names ${cert.certificate.nodeId}`,
        );
      }
      // Re-enrolling the same key keeps its window, so its old events cannot be replayed.
      const window = node && node.keyId === cert.certificate.keyId ? node.window : EMPTY_WINDOW;
      state.nodes.set(event.nodeId, {
        nodeId: event.nodeId,
        status: 'enrolled',
        publicKey: cert.certificate.publicKey,
        keyId: cert.certificate.keyId,
        peerId: cert.certificate.peerId,
        labels: node?.labels,
        how: event.how,
        certificate: cert.certificate,
        requestedAt: node?.requestedAt,
        since: event.at,
        sinceSeq: seq,
        window,
      });
      return pass(true);
    }
    case 'NodeEnrollmentRejected':
    case 'NodeRevoked': {
      if (!node) return pass(false);
      node.status = event.type === 'NodeRevoked' ? 'revoked' : 'rejected';
      node.since = event.at;
      node.sinceSeq = seq;
      return pass(true);
    }
  }
}
