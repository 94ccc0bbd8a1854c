import type { ActivityOptions } from '@temporalio/common';

// Named time limits for activities and children, so every wait in a workflow reads as a policy.

/** Appending events and signing commands: quick, retried on transient NATS trouble. */
export const QUICK_ACTIVITY: ActivityOptions = {
  startToCloseTimeout: '30s',
  retry: { maximumInterval: '10s' },
};

/** Asking a worker whether JetStream answers: seconds, a couple of tries. */
export const PROBE_ACTIVITY: ActivityOptions = {
  startToCloseTimeout: '10s',
  retry: { maximumAttempts: 3, maximumInterval: '2s' },
};

/**
 * While NATS is unreachable a node's phase keeps waiting; each further wait doubles, up to this
 * (or the phase's own limit when longer), so a long outage adds little history.
 */
export const OUTAGE_RECHECK_MAX_MS = 300_000;

/**
 * A node not heard from for this long counts as unreachable: four of an agent's default 15 s
 * heartbeats, so a late one or two do not count.
 */
export const NODE_SILENCE_MS = 60_000;

/** Building an image: long, heartbeating. */
export const BUILD_ACTIVITY: ActivityOptions = {
  startToCloseTimeout: '2h',
  heartbeatTimeout: '1m',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: ['BuildFailed'] },
};

/** Publishing to the object store: as long as the upload, heartbeating. */
export const PUBLISH_ACTIVITY: ActivityOptions = {
  startToCloseTimeout: '1h',
  heartbeatTimeout: '1m',
  scheduleToStartTimeout: '10m',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['ImageNotFound'] },
};

/** Pushing an image to an OCI registry: as long as the upload, heartbeating; a refused push is final. */
export const PUSH_ACTIVITY: ActivityOptions = {
  startToCloseTimeout: '1h',
  heartbeatTimeout: '1m',
  scheduleToStartTimeout: '10m',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: ['BuildFailed'] },
};

/** How long a signed command stays valid after it is issued, beyond the node's accept timeout. */
export const COMMAND_TTL_SLACK_MS = 60_000;

/** A rollout continues as new well before Temporal's 10,240-event history warning. */
export const HISTORY_EVENT_BUDGET = 8_000;

/** Children in flight per rollout execution, at most (bounds the pending-child limit). */
export const MAX_CHILDREN_IN_FLIGHT = 500;
