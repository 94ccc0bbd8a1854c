import { randomUUID } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { EventLog } from '../eventlog/index.ts';
import { loadOrCreatePeerKey } from '../p2p/identity.ts';
import {
  CONTROL_PLANE_ID,
  ENROLMENTS_BUCKET,
  nodeEventSubject,
  relayEventSubject,
  trustEventsFilter,
  type EnrolmentCertificate,
  type ControlPlaneKeyRetired,
  type NodeEnrolled,
  type TrustEvent,
} from '../schema/index.ts';
import {
  issueEnrolment,
  loadSigningKey,
  nodeIdentityFromPeerKey,
  signTrustEvent,
  type SigningKey,
  type TrustedKeys,
} from '../signing/index.ts';
import type { z } from 'zod';
import { controlPlaneTrustedKeys } from './control-plane-keys.ts';
import { applyTrust, emptyTrustState, type NodeTrust, type TrustState } from './reducer.ts';

/** An enrolment decision that cannot be made (unknown node, not pending, already revoked …). */
export class EnrolmentError extends Error {
  override name = 'EnrolmentError';
}

/**
 * Where per-node credentials get issued when a node is enrolled (NATS user credentials with the
 * node's permissions). Called once the certificate exists and before it is published; the
 * default issues none.
 */
export type IssueNodeCredentials = (node: {
  nodeId: string;
  publicKey: string;
  certificate: EnrolmentCertificate;
}) => Promise<void>;

/** What the control plane's enrolment commands need. */
export interface EnrolmentAuthority {
  readonly log: EventLog;
  /** The certificate bucket agents watch. */
  readonly certificates: KV;
  readonly key: SigningKey;
  readonly trustedKeys: TrustedKeys;
  /** Who decides, recorded in the trust events (operator name). */
  readonly by: string;
  readonly issueNodeCredentials?: IssueNodeCredentials;
}

/** The enrolment authority of a control plane whose keys live under `home` (SLOTFLOW_HOME). */
export async function localAuthority(
  nc: NatsConnection,
  log: EventLog,
  home: string,
  by: string,
): Promise<EnrolmentAuthority> {
  return {
    log,
    certificates: await openEnrolmentBucket(nc),
    key: await loadSigningKey(home),
    trustedKeys: await controlPlaneTrustedKeys(home, { retired: true }),
    by,
  };
}

/** Opens (creating if needed) the bucket of enrolment certificates, one per node id. */
export async function openEnrolmentBucket(nc: NatsConnection): Promise<KV> {
  return new Kvm(nc).create(ENROLMENTS_BUCKET, {
    history: 1,
    description: 'slotflow enrolment certificates by node id (agents waiting for acceptance watch theirs)',
  });
}

/**
 * The enrolment view of the log: trust decisions and enrolment requests only (not every node
 * event), so replay windows stay empty; statuses and keys are exactly the projection's.
 */
export async function readTrustState(log: EventLog, trustedKeys: TrustedKeys): Promise<TrustState> {
  const state = emptyTrustState();
  for await (const { seq, event, subject } of log.replay({
    filters: [
      trustEventsFilter(),
      nodeEventSubject('*', 'NodeEnrollmentRequested'),
      relayEventSubject('*', '*', 'NodeEnrollmentRequested'),
    ],
  })) {
    applyTrust(state, seq, event, trustedKeys, subject);
  }
  return state;
}

async function publish(authority: EnrolmentAuthority, event: TrustEvent): Promise<number> {
  const { seq } = await authority.log.append(event);
  return seq;
}

type Body<T> = Omit<T, 'issuer'>;
const envelope = (nodeId: string, by: string) => ({
  v: 1 as const,
  id: randomUUID(),
  at: new Date().toISOString(),
  nodeId,
  by,
});

/** Issues a certificate for `publicKey`, records NodeEnrolled and hands the certificate to the node. */
export async function enrolNode(
  authority: EnrolmentAuthority,
  input: {
    nodeId: string;
    publicKey: string;
    how: 'preauthorized' | 'accepted';
    /** Revoke the key the node is enrolled with, if another, first (a reinstalled node). */
    replaceKey?: boolean;
  },
): Promise<{ certificate: EnrolmentCertificate; seq: number }> {
  if (input.nodeId === CONTROL_PLANE_ID) {
    throw new EnrolmentError(
      `node id ${CONTROL_PLANE_ID} is reserved for the control plane's own records; choose another`,
    );
  }
  const state = await readTrustState(authority.log, authority.trustedKeys);
  const prior = state.nodes.get(input.nodeId);
  const certificate = issueEnrolment({ nodeId: input.nodeId, publicKey: input.publicKey }, authority.key);
  if (prior?.status === 'enrolled' && prior.keyId !== certificate.keyId && input.replaceKey) {
    await revokeNode(authority, input.nodeId, `replaced by key ${certificate.keyId}`);
  } else if (prior?.status === 'enrolled' && prior.keyId !== certificate.keyId) {
    throw new EnrolmentError(
      `node ${input.nodeId} is enrolled with key ${prior.keyId}, not ${certificate.keyId}; run 'slotflow node revoke ${input.nodeId}' first to enrol a new key`,
    );
  }
  await authority.issueNodeCredentials?.({ nodeId: input.nodeId, publicKey: input.publicKey, certificate });
  const body: Body<z.infer<typeof NodeEnrolled>> = {
    ...envelope(input.nodeId, authority.by),
    type: 'NodeEnrolled',
    how: input.how,
    certificate,
  };
  // The decision is in the log before the node can act on it, so its first events come after.
  const seq = await publish(authority, signTrustEvent(body, authority.key));
  await authority.certificates.put(input.nodeId, JSON.stringify(certificate));
  return { certificate, seq };
}

/**
 * Pre-authorises a node (Mender's preauthorization): creates its identity key in `dataDir` if it
 * has none, enrols that key and writes `<dataDir>/enrolment.json`, so the agent starts enrolled.
 */
export async function preauthorizeNode(
  authority: EnrolmentAuthority,
  input: { nodeId: string; dataDir: string; replaceKey?: boolean },
): Promise<{ certificate: EnrolmentCertificate; file: string; seq: number }> {
  await mkdir(input.dataDir, { recursive: true });
  const { key } = await loadOrCreatePeerKey(join(input.dataDir, 'peer.key'));
  const identity = nodeIdentityFromPeerKey(key);
  const { certificate, seq } = await enrolNode(authority, {
    nodeId: input.nodeId,
    publicKey: identity.publicKey,
    how: 'preauthorized',
    ...(input.replaceKey ? { replaceKey: true } : {}),
  });
  const file = join(input.dataDir, 'enrolment.json');
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(certificate, null, 2), { mode: 0o644 });
  await rename(tmp, file);
  return { certificate, file, seq };
}

function pendingNode(state: TrustState, nodeId: string): NodeTrust {
  const node = state.nodes.get(nodeId);
  if (!node) {
    throw new EnrolmentError(
      `node ${nodeId} has not asked to be enrolled; see 'slotflow node pending', or pre-authorise it with 'slotflow node preauthorize'`,
    );
  }
  if (node.status !== 'pending') {
    throw new EnrolmentError(`node ${nodeId} is ${node.status} since ${node.since}, not pending`);
  }
  return node;
}

/** Accepts a pending request: enrols the key the node presented. */
export async function acceptNode(
  authority: EnrolmentAuthority,
  nodeId: string,
): Promise<{ certificate: EnrolmentCertificate; seq: number }> {
  const node = pendingNode(await readTrustState(authority.log, authority.trustedKeys), nodeId);
  return enrolNode(authority, { nodeId, publicKey: node.publicKey, how: 'accepted' });
}

/** Refuses a pending request. */
export async function rejectNode(
  authority: EnrolmentAuthority,
  nodeId: string,
  reason?: string,
): Promise<{ seq: number }> {
  pendingNode(await readTrustState(authority.log, authority.trustedKeys), nodeId);
  const event = signTrustEvent<Extract<TrustEvent, { type: 'NodeEnrollmentRejected' }>>(
    { ...envelope(nodeId, authority.by), type: 'NodeEnrollmentRejected', ...(reason ? { reason } : {}) },
    authority.key,
  );
  return { seq: await publish(authority, event) };
}

/** Revokes an enrolled node: its events are refused from this point of the log on. */
export async function revokeNode(
  authority: EnrolmentAuthority,
  nodeId: string,
  reason?: string,
): Promise<{ seq: number }> {
  const node = (await readTrustState(authority.log, authority.trustedKeys)).nodes.get(nodeId);
  if (node?.status !== 'enrolled') {
    throw new EnrolmentError(
      `node ${nodeId} is ${node ? `${node.status} since ${node.since}` : 'not known'}, not enrolled; nothing to revoke`,
    );
  }
  const event = signTrustEvent<Extract<TrustEvent, { type: 'NodeRevoked' }>>(
    { ...envelope(nodeId, authority.by), type: 'NodeRevoked', ...(reason ? { reason } : {}) },
    authority.key,
  );
  const seq = await publish(authority, event);
  await authority.certificates.delete(nodeId);
  return { seq };
}

/**
 * Accepts each of `nodeIds` as soon as its enrolment request is in the log (for machines whose
 * data dir the operator cannot reach before first boot, such as lab VMs); resolves once all are
 * enrolled, or throws after `timeoutMs` naming the ones that never asked.
 */
export async function acceptWhenPending(
  authority: EnrolmentAuthority,
  nodeIds: readonly string[],
  { timeoutMs = 600_000, pollMs = 1_000 }: { timeoutMs?: number; pollMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const waiting = new Set(nodeIds);
  while (waiting.size > 0) {
    const state = await readTrustState(authority.log, authority.trustedKeys);
    for (const nodeId of [...waiting]) {
      const node = state.nodes.get(nodeId);
      if (node?.status === 'enrolled') waiting.delete(nodeId);
      else if (node?.status === 'pending') {
        await enrolNode(authority, { nodeId, publicKey: node.publicKey, how: 'accepted', replaceKey: true });
        waiting.delete(nodeId);
      }
    }
    if (waiting.size === 0) return;
    if (Date.now() > deadline) {
      throw new EnrolmentError(`no enrolment request from ${[...waiting].join(', ')} within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** What retiring a control-plane key did to the log. */
export interface KeyRetirement {
  /** Nodes whose certificate the retired key had signed, enrolled again under the signing key. */
  readonly recertified: string[];
  /** Position of the ControlPlaneKeyRetired (the earlier one when the log already had it). */
  readonly seq: number;
  readonly already: boolean;
}

/**
 * Records in the log that control-plane key `keyId` signs no more, after re-issuing, with the
 * authority's key (the one that signs now), the certificate of every enrolled node it had signed:
 * so enrolments stay valid, and peers and plans, which check certificates against the keys
 * trusted now, keep accepting those nodes. Decisions the retired key signed before this point of
 * the log stay valid on replay; any it signs after are refused.
 */
export async function retireControlPlaneKey(
  authority: EnrolmentAuthority,
  keyId: string,
): Promise<KeyRetirement> {
  if (keyId === authority.key.keyId) {
    throw new EnrolmentError(`key ${keyId} signs now; a key cannot retire itself`);
  }
  const state = await readTrustState(authority.log, authority.trustedKeys);
  const recertified: string[] = [];
  for (const node of [...state.nodes.values()].sort((a, b) => a.nodeId.localeCompare(b.nodeId))) {
    if (node.status !== 'enrolled' || node.certificate?.issuer.keyId !== keyId) continue;
    const certificate = issueEnrolment({ nodeId: node.nodeId, publicKey: node.publicKey }, authority.key);
    const body: Body<z.infer<typeof NodeEnrolled>> = {
      ...envelope(node.nodeId, authority.by),
      type: 'NodeEnrolled',
      how: node.how ?? 'preauthorized',
      certificate,
    };
    await publish(authority, signTrustEvent(body, authority.key));
    await authority.certificates.put(node.nodeId, JSON.stringify(certificate));
    recertified.push(node.nodeId);
  }
  const earlier = state.retiredKeys.get(keyId);
  if (earlier !== undefined) return { recertified, seq: earlier, already: true };
  const event = signTrustEvent<ControlPlaneKeyRetired>(
    {
      ...envelope(CONTROL_PLANE_ID, authority.by),
      type: 'ControlPlaneKeyRetired',
      nodeId: CONTROL_PLANE_ID,
      keyId,
    },
    authority.key,
  );
  return { recertified, seq: await publish(authority, event), already: false };
}
