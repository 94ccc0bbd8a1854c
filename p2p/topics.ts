// Names on the wire. A version suffix changes only with an incompatible message shape.

/** Signed commands and signed rollout plans. */
export const COMMANDS_TOPIC = 'slotflow/commands/1';
/** Node events, relayed into JetStream by any agent that reaches NATS. */
export const EVENTS_TOPIC = 'slotflow/events/1';
/** Reboot-lease reports (turn started, turn done with outcome). */
export const LEASE_TOPIC = 'slotflow/lease/1';
/** Which chunks of which image a peer holds. */
export const CHUNKS_TOPIC = 'slotflow/chunks/1';
/** Content-addressed chunk exchange (request/response stream protocol). */
export const CHUNK_PROTOCOL = '/slotflow/chunk/1';

/** Enrolment certificates on request (request/response stream protocol). */
export const ENROLMENT_PROTOCOL = '/slotflow/enrolment/1';

/** Every gossip topic slotflow uses; peers ignore any other. */
export const ALL_TOPICS: readonly string[] = [COMMANDS_TOPIC, EVENTS_TOPIC, LEASE_TOPIC, CHUNKS_TOPIC];
