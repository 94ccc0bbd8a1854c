import {
  COMMANDS_STREAM,
  ENROLMENTS_BUCKET,
  IMAGES_BUCKET,
  PLANS_STREAM,
  PLANS_SUBJECTS,
  TRUST_CHECKPOINT_BUCKET,
  commandConsumerName,
  commandSubject,
  nodeEventsFilter,
  nodeInboxPrefix,
  relayEventsFilter,
} from '../schema/index.ts';

/** Who a NATS credential is for; each role gets its own permissions. */
export type NatsRole =
  { readonly type: 'node'; readonly nodeId: string } | { readonly type: 'worker' } | { readonly type: 'cli' };

/** Publish and subscribe allow/deny lists, as a user JWT carries them. */
export interface NatsPermissions {
  readonly pub: { readonly allow: string[]; readonly deny: string[] };
  readonly sub: { readonly allow: string[]; readonly deny: string[] };
}

const API = '$JS.API';

/**
 * The JetStream API a node needs to read a stream through ordered consumers it creates itself
 * (the plans it follows, the images it fetches): stream info, consumer create on `filter`,
 * next/info/delete of those consumers, and direct or stored message gets.
 */
function readThroughOrderedConsumers(stream: string, filter: string): string[] {
  return [
    `${API}.STREAM.INFO.${stream}`,
    `${API}.CONSUMER.CREATE.${stream}.*.${filter}`,
    `${API}.CONSUMER.MSG.NEXT.${stream}.*`,
    `${API}.CONSUMER.INFO.${stream}.*`,
    `${API}.CONSUMER.DELETE.${stream}.*`,
  ];
}

/**
 * A node's permissions, the enforcement point of "a node speaks only for itself": it publishes
 * only its own events, and peers' events it relays only under its own id as relayer (what a relay
 * carries is judged by its author's signature, so naming the relayer only makes each copy
 * traceable to the node that stored it), reads only its own commands (its durable consumer, created only with its
 * own filter subject, so it cannot be pointed at another node's commands), and otherwise only
 * reads the rollout plans and the image bucket. Replies come to its own inbox prefix.
 */
export function nodePermissions(nodeId: string, imagesBucket: string = IMAGES_BUCKET): NatsPermissions {
  const consumer = commandConsumerName(nodeId);
  const objects = `OBJ_${imagesBucket}`;
  return {
    pub: {
      allow: [
        nodeEventsFilter(nodeId),
        relayEventsFilter('*', nodeId),
        `${API}.INFO`,
        `${API}.CONSUMER.INFO.${COMMANDS_STREAM}.${consumer}`,
        `${API}.CONSUMER.CREATE.${COMMANDS_STREAM}.${consumer}.${commandSubject(nodeId)}`,
        `${API}.CONSUMER.MSG.NEXT.${COMMANDS_STREAM}.${consumer}`,
        `$JS.ACK.${COMMANDS_STREAM}.${consumer}.>`,
        ...readThroughOrderedConsumers(PLANS_STREAM, PLANS_SUBJECTS),
        // Its own enrolment certificate, which it watches for while it waits to be accepted.
        ...readThroughOrderedConsumers(`KV_${ENROLMENTS_BUCKET}`, `$KV.${ENROLMENTS_BUCKET}.${nodeId}`),
        ...readThroughOrderedConsumers(objects, `$O.${imagesBucket}.C.*`),
        `${API}.DIRECT.GET.${objects}`,
        `${API}.DIRECT.GET.${objects}.>`,
        `${API}.STREAM.MSG.GET.${objects}`,
      ],
      deny: [],
    },
    sub: { allow: [`${nodeInboxPrefix(nodeId)}.>`], deny: [] },
  };
}

/**
 * The worker runs the control plane (streams, commands, plans, rollout events, projections,
 * images) but never speaks for a node: node events, direct or relayed, come only from nodes.
 */
export function workerPermissions(): NatsPermissions {
  return {
    pub: { allow: ['>'], deny: [nodeEventsFilter(), relayEventsFilter()] },
    sub: { allow: ['>'], deny: [] },
  };
}

/**
 * Writing the trust checkpoint bucket: its values, and creating, changing, purging or deleting
 * its stream or one of its messages. The worker's gate resumes from what is stored there.
 */
export function trustCheckpointWrites(bucket: string = TRUST_CHECKPOINT_BUCKET): string[] {
  const stream = `KV_${bucket}`;
  return [`$KV.${bucket}.>`, `${API}.STREAM.*.${stream}`, `${API}.STREAM.MSG.DELETE.${stream}`];
}

/**
 * The operator's CLI administers the account: it may do anything in it but write the trust
 * checkpoint, which only the worker that owns it writes (reading it is allowed).
 */
export function cliPermissions(): NatsPermissions {
  return { pub: { allow: ['>'], deny: trustCheckpointWrites() }, sub: { allow: ['>'], deny: [] } };
}

/** The permissions of a role. */
export function permissionsOf(role: NatsRole): NatsPermissions {
  switch (role.type) {
    case 'node':
      return nodePermissions(role.nodeId);
    case 'worker':
      return workerPermissions();
    case 'cli':
      return cliPermissions();
  }
}
