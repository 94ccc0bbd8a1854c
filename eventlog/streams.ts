import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import {
  COMMANDS_STREAM,
  COMMANDS_SUBJECTS,
  EVENTS_STREAM,
  EVENTS_SUBJECTS,
  PLANS_STREAM,
  PLANS_SUBJECTS,
} from '../schema/index.ts';

const DAY_MS = 86_400_000;

/** Retention and de-duplication settings for slotflow's two streams. */
export interface StreamLimits {
  /** Window in which a re-published event id is dropped as a duplicate (outbox re-sends). */
  eventsDuplicateWindowMs: number;
  /** Upper bound on stored events; oldest go first past it. */
  eventsMaxBytes: number;
  /**
   * Per-subject cap: a subject is one node's or rollout's events of one type, so this trims old
   * heartbeats without dropping any rare fact (no node reaches 100k upgrades).
   */
  eventsMaxPerSubject: number;
  /** Commands expire in minutes; a week keeps them for audits. */
  commandsMaxAgeMs: number;
  commandsDuplicateWindowMs: number;
  replicas: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  eventsDuplicateWindowMs: DAY_MS,
  eventsMaxBytes: 8 * 1024 ** 3,
  eventsMaxPerSubject: 100_000,
  commandsMaxAgeMs: 7 * DAY_MS,
  commandsDuplicateWindowMs: 10 * 60_000,
  replicas: 1,
};

/** Stream configuration for the event log. */
export function eventsStreamConfig(
  limits: StreamLimits = DEFAULT_STREAM_LIMITS,
): Partial<StreamConfig> & { name: string } {
  return {
    name: EVENTS_STREAM,
    subjects: [EVENTS_SUBJECTS],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    duplicate_window: nanos(limits.eventsDuplicateWindowMs),
    max_bytes: limits.eventsMaxBytes,
    max_msgs_per_subject: limits.eventsMaxPerSubject,
    max_msg_size: 1024 * 1024,
    num_replicas: limits.replicas,
    allow_direct: true,
    description: 'slotflow domain events: the source of truth for fleet and rollout state',
  };
}

/** Stream configuration for signed commands. */
export function commandsStreamConfig(
  limits: StreamLimits = DEFAULT_STREAM_LIMITS,
): Partial<StreamConfig> & { name: string } {
  return {
    name: COMMANDS_STREAM,
    subjects: [COMMANDS_SUBJECTS],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    duplicate_window: nanos(limits.commandsDuplicateWindowMs),
    max_age: nanos(limits.commandsMaxAgeMs),
    max_msg_size: 1024 * 1024,
    num_replicas: limits.replicas,
    description: 'slotflow signed commands, one durable consumer per node',
  };
}

/** Stream configuration for signed rollout plans: the latest plan of each rollout, for a week. */
export function plansStreamConfig(
  limits: StreamLimits = DEFAULT_STREAM_LIMITS,
): Partial<StreamConfig> & { name: string } {
  return {
    name: PLANS_STREAM,
    subjects: [PLANS_SUBJECTS],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_msgs_per_subject: 1,
    max_age: nanos(limits.commandsMaxAgeMs),
    max_msg_size: 4 * 1024 * 1024,
    num_replicas: limits.replicas,
    allow_direct: true,
    description: 'slotflow signed rollout plans, the latest per rollout (peer-to-peer fallback)',
  };
}

async function ensureStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string },
): Promise<void> {
  const name = config.name;
  try {
    await jsm.streams.info(name);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
    try {
      await jsm.streams.add(config);
      return;
    } catch (addErr) {
      // Another process created it between our look and our add: that is the goal anyway.
      if (!/already in use|stream name already/i.test((addErr as Error).message)) throw addErr;
    }
  }
  await jsm.streams.update(name, config);
}

/** Creates or updates SLOTFLOW_EVENTS, SLOTFLOW_COMMANDS and SLOTFLOW_PLANS; safe to call from every process. */
export async function ensureStreams(
  jsm: JetStreamManager,
  limits: StreamLimits = DEFAULT_STREAM_LIMITS,
): Promise<void> {
  await ensureStream(jsm, eventsStreamConfig(limits));
  await ensureStream(jsm, commandsStreamConfig(limits));
  await ensureStream(jsm, plansStreamConfig(limits));
}
