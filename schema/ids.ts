import { z } from 'zod';

// Ids appear as NATS subject tokens and in Temporal workflow ids, so they exclude '.', '*',
// '>', '/' and whitespace.
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const ID_HINT = "1-63 letters, digits, '-' or '_', starting with a letter or digit";

/** A node's stable id, e.g. `edge-berlin-07`. */
export const NodeId = z.string().regex(ID_PATTERN, `expected a node id (${ID_HINT})`);
export type NodeId = z.infer<typeof NodeId>;

/** A rollout's id, e.g. `r-2026-11-22-a`. */
export const RolloutId = z.string().regex(ID_PATTERN, `expected a rollout id (${ID_HINT})`);
export type RolloutId = z.infer<typeof RolloutId>;

/** A unique event or command id (used for NATS de-duplication). */
export const MessageId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_:.-]{0,127}$/, 'expected a message id (1-128 letters, digits, "-_:.")');

/** A sha256 digest written as `sha256:<64 hex>`. */
export const Digest = z
  .string()
  .regex(/^sha256:[0-9a-f]{64}$/, 'expected a digest like sha256:<64 lowercase hex digits>');
export type Digest = z.infer<typeof Digest>;

/** An A/B slot name. */
export const Slot = z.enum(['a', 'b']);
export type Slot = z.infer<typeof Slot>;

/** The other slot of an A/B pair. */
export function otherSlot(slot: Slot): Slot {
  return slot === 'a' ? 'b' : 'a';
}

/** An ISO-8601 timestamp in UTC. */
export const Timestamp = z.iso.datetime({ message: 'expected an ISO-8601 UTC timestamp' });

/** Checks an id without throwing; used where a bad id must become a rejection, not an exception. */
export function isValidId(value: string): boolean {
  return ID_PATTERN.test(value);
}
