import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { openEventLog } from '../eventlog/index.ts';
import { catchUp, loadProjection, openProjectionBucket } from '../projection/index.ts';
import { COMMANDS_STREAM, COMMAND_VERSION, commandSubject, type KeyCommandInput } from '../schema/index.ts';
import { newNonce, signCommand, type SigningKey } from '../signing/index.ts';
import { controlPlaneTrustedKeys } from '../trust/control-plane-keys.ts';

/** What a key command says, without the envelope every node's copy gets. */
export type KeyCommandBody =
  { type: 'TrustKey'; trustKeyId: string; publicKey: string } | { type: 'RevokeKey'; revokeKeyId: string };

/** Where a key command went. */
export interface Announcement {
  readonly nodes: string[];
  readonly expiresAt: string;
}

/**
 * Signs one key command per node of the fleet projection and puts it on the node's durable
 * command subject, in order with its other commands; an agent that is offline gets it when it
 * returns (within `ttlMs`), and agents re-gossip it to peers cut off from NATS.
 */
export async function announceToFleet(
  nc: NatsConnection,
  home: string,
  body: KeyCommandBody,
  signer: SigningKey,
  ttlMs: number,
  now = new Date(),
): Promise<Announcement> {
  // Every node enrolled under any key this control plane ever had, retired ones included: a node
  // enrolled under a key being revoked must still hear of the revocation.
  const trustedKeys = await controlPlaneTrustedKeys(home, { retired: true });
  const projection = await catchUp(
    await loadProjection(await openProjectionBucket(nc)),
    await openEventLog(nc),
    { trustedKeys },
  );
  const nodes = [...projection.nodes.keys()].sort();
  const js = jetstream(nc);
  const expiresAt = new Date(now.getTime() + ttlMs).toISOString();
  const keyId = body.type === 'TrustKey' ? body.trustKeyId : body.revokeKeyId;
  const verb = body.type === 'TrustKey' ? 'trust' : 'revoke';
  for (const nodeId of nodes) {
    // A fresh id each time: announcing again (a node missed it) is not dropped as a duplicate.
    const commandId = `key-${keyId}.${verb}.${nodeId}.${now.getTime().toString(36)}`;
    const signed = signCommand(
      {
        ...body,
        v: COMMAND_VERSION,
        commandId,
        nonce: newNonce(),
        issuedAt: now.toISOString(),
        expiresAt,
        nodeId,
      } as KeyCommandInput,
      signer,
    );
    await js.publish(commandSubject(nodeId), JSON.stringify(signed), {
      msgID: commandId,
      expect: { streamName: COMMANDS_STREAM },
    });
  }
  return { nodes, expiresAt };
}
