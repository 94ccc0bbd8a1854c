import { z } from 'zod';
import { AgentState, Command, Digest, MessageId, NodeEvent, Slot, Timestamp } from '../schema/index.ts';

// The journal is the agent's memory across crashes and reboots. Its shape is versioned like
// mender's state data: a newer agent reads an older journal (migrations go in journal.ts), and
// an older agent refuses a newer one instead of misreading it.

/** Current journal shape. */
export const JOURNAL_VERSION = 1;

/** The upgrade or rollback in progress. */
export const Operation = z.object({
  kind: z.enum(['upgrade', 'rollback']),
  /** The verified command, kept whole so the agent can finish it after a restart. */
  command: Command,
  /** The slot the node ran when the command arrived (what a fallback returns to). */
  fromSlot: Slot,
  fromVersion: z.string(),
  fromDigest: Digest.optional(),
  /** The slot the operation boots into. */
  toSlot: Slot,
  toVersion: z.string(),
  toDigest: Digest.optional(),
  /** Configured health checks to run on the trial boot, by name. */
  checks: z.array(z.string()),
  /** The artifact source the image came from. */
  source: z.string().optional(),
  /** Boot id when a reboot was requested; a different boot id later means it happened. */
  rebootBootId: z.string().optional(),
  /** Set once the fallback asked for its own reboot (so the agent reports NodeBooted again). */
  fallbackRebooting: z.boolean().default(false),
  /** Fallback reboots so far; bounded so a slot that will not let go cannot loop forever. */
  fallbackAttempts: z.number().int().nonnegative().default(0),
  /** A Cancel command arrived; honoured before the reboot. */
  cancelRequested: z.boolean().default(false),
  /** Why the operation is falling back. */
  failure: z.string().optional(),
  startedAt: Timestamp,
  /** Under a rollout plan without the control plane: the end of this node's reboot turn. */
  turnDeadline: Timestamp.optional(),
});
export type Operation = z.output<typeof Operation>;

/** A command the agent finished, and the event that ended it (re-sent on redelivery). */
export const HandledCommand = z.object({ commandId: MessageId, final: NodeEvent });
export type HandledCommand = z.output<typeof HandledCommand>;

/** The whole journal document. */
export const JournalData = z.object({
  v: z.literal(JOURNAL_VERSION),
  /** Increments with every commit; shows how far the agent got. */
  seq: z.number().int().nonnegative(),
  state: AgentState,
  stateSince: Timestamp,
  op: Operation.nullable(),
  /**
   * The last event number handed out: every event the node signs carries the next one, so a
   * number is never used twice, even across a power loss (journals before it start at 0).
   */
  eventSeq: z.number().int().nonnegative().default(0),
  /** Events recorded but not yet acknowledged by JetStream, oldest first (signed when recorded). */
  outbox: z.array(NodeEvent),
  /** Recently finished commands, newest last (bounded). */
  handled: z.array(HandledCommand),
  /** Nonces of accepted or refused verified commands, with their expiry (ms since epoch). */
  nonces: z.record(z.string(), z.number()),
  /** How the last operation ended, for metrics. */
  last: z.object({ result: z.string(), commandId: MessageId, at: Timestamp }).optional(),
});
export type JournalData = z.output<typeof JournalData>;

/** A journal for a node that has never done anything. */
export function emptyJournal(now = new Date()): JournalData {
  return {
    v: JOURNAL_VERSION,
    seq: 0,
    state: 'idle',
    stateSince: now.toISOString(),
    op: null,
    eventSeq: 0,
    outbox: [],
    handled: [],
    nonces: {},
  };
}
