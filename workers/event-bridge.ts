import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JsMsg,
} from '@nats-io/jetstream';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { EventLog } from '../eventlog/index.ts';
import type { TrustGate } from '../trust/index.ts';
import { EVENTS_STREAM, NodeEvent, nodeEventsFilters } from '../schema/index.ts';
import {
  NODE_SIGNAL_TYPES,
  nodeWorkflowId,
  parseCommandId,
  rolloutWorkflowId,
  type NodeSignalType,
} from '../workflows/definitions.ts';

/** Durable consumer name of the bridge; every worker shares it, so each event is handled once. */
export const BRIDGE_CONSUMER = 'slotflow-event-bridge';
const SIGNAL_TYPES: ReadonlySet<string> = new Set(NODE_SIGNAL_TYPES);
const MAX_IN_FLIGHT = 64;

/** First delay before an event held for a node workflow not started yet is offered again. */
export const HOLD_FIRST_DELAY_MS = 1_000;
/** Longest delay between offers of a held event (bounds how late a starting workflow gets it). */
export const HOLD_MAX_DELAY_MS = 10_000;
// How long a workflow lookup is reused: held events of one node come in bursts.
const LOOKUP_TTL_MS = 1_000;
const LOOKUP_CACHE_SIZE = 10_000;

/** How long a held event waits after its n-th delivery before the next: 1 s, 2 s, 4 s, 8 s, then 10 s. */
export function holdDelayMs(deliveries: number): number {
  return Math.min(HOLD_MAX_DELAY_MS, HOLD_FIRST_DELAY_MS * 2 ** Math.max(0, deliveries - 1));
}

export interface EventBridge {
  stop(): Promise<void>;
  /** Events signalled so far (for logs and benchmarks). */
  delivered(): number;
}

/**
 * Held events stay unacknowledged (NAKed with a delay) until their workflow starts, possibly a
 * whole site's outbox at once; with no cap on pending acks they never stop the bridge from
 * receiving the events of nodes that are running.
 */
const consumerConfig = {
  durable_name: BRIDGE_CONSUMER,
  ack_policy: AckPolicy.Explicit,
  // Events older than the bridge concern no workflow it could signal.
  deliver_policy: DeliverPolicy.New,
  // Node events as their authors stored them and as peers relayed them; the gate judges both alike.
  filter_subjects: nodeEventsFilters(),
  ack_wait: 30_000_000_000,
  max_ack_pending: -1,
  max_deliver: -1,
};

async function ensureConsumer(log: EventLog): Promise<void> {
  let info;
  try {
    info = await log.jsm.consumers.info(EVENTS_STREAM, BRIDGE_CONSUMER);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
    await log.jsm.consumers.add(EVENTS_STREAM, consumerConfig);
    return;
  }
  const { max_ack_pending, max_deliver, ack_wait } = info.config;
  // A consumer made before relays existed reads only the direct subjects.
  const filters =
    info.config.filter_subjects ?? (info.config.filter_subject ? [info.config.filter_subject] : []);
  const sameFilters =
    filters.length === consumerConfig.filter_subjects.length &&
    consumerConfig.filter_subjects.every((f) => filters.includes(f));
  if (
    max_ack_pending !== consumerConfig.max_ack_pending ||
    max_deliver !== consumerConfig.max_deliver ||
    ack_wait !== consumerConfig.ack_wait ||
    !sameFilters
  ) {
    await log.jsm.consumers.update(EVENTS_STREAM, BRIDGE_CONSUMER, {
      max_ack_pending: consumerConfig.max_ack_pending,
      max_deliver: consumerConfig.max_deliver,
      ack_wait: consumerConfig.ack_wait,
      ...(sameFilters ? {} : { filter_subject: '', filter_subjects: consumerConfig.filter_subjects }),
    });
  }
}

/**
 * The highest stream sequence below which the bridge has acknowledged every message: those are
 * never delivered (nor asked about) again.
 */
export async function bridgeAckFloor(log: EventLog): Promise<number> {
  try {
    return (await log.jsm.consumers.info(EVENTS_STREAM, BRIDGE_CONSUMER)).ack_floor.stream_seq;
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) return 0;
    throw err;
  }
}

/** A small map whose entries expire, for workflow lookups many held events share. */
function expiringCache<T>(ttlMs: number): {
  get(key: string): T | undefined;
  set(key: string, value: T): void;
  delete(key: string): void;
} {
  const entries = new Map<string, { value: T; until: number }>();
  return {
    get(key) {
      const hit = entries.get(key);
      if (hit && hit.until > Date.now()) return hit.value;
      entries.delete(key);
      return undefined;
    },
    set(key, value) {
      if (entries.size >= LOOKUP_CACHE_SIZE) entries.delete(entries.keys().next().value as string);
      entries.set(key, { value, until: Date.now() + ttlMs });
    },
    delete(key) {
      entries.delete(key);
    },
  };
}

/**
 * Signals each node event to the workflow that sent the command it answers, at least once.
 * Workflows ignore a second delivery by event id. An event for a node workflow its rollout has
 * not started yet (a node that went ahead peer to peer, its outbox flushed when NATS came back)
 * is held and offered again with a growing delay until the workflow exists; events for a
 * finished workflow, or of a rollout that ended or is unknown, are dropped.
 */
export async function startEventBridge({
  log,
  client,
  logger,
  gate,
}: {
  log: EventLog;
  client: Client;
  logger: Logger;
  /** Verdicts on signatures and enrolment: a refused event never reaches a workflow. */
  gate: TrustGate;
}): Promise<EventBridge> {
  await ensureConsumer(log);
  const consumer = await log.js.consumers.get(EVENTS_STREAM, BRIDGE_CONSUMER);
  const messages = await consumer.consume({ max_messages: 256 });
  let inFlight = 0;
  let delivered = 0;
  const idle: (() => void)[] = [];
  const absent = expiringCache<true>(LOOKUP_TTL_MS);
  const openRollouts = expiringCache<Promise<boolean>>(LOOKUP_TTL_MS);

  async function handle(m: JsMsg): Promise<void> {
    let raw: unknown;
    try {
      raw = m.json();
    } catch {
      m.term();
      return;
    }
    const parsed = NodeEvent.safeParse(raw);
    if (!parsed.success || !SIGNAL_TYPES.has(parsed.data.type)) {
      m.ack();
      return;
    }
    const event = parsed.data;
    const command = 'commandId' in event && event.commandId ? parseCommandId(event.commandId) : undefined;
    if (!command || command.kind === 'cancel') {
      m.ack();
      return;
    }
    let verdict;
    try {
      verdict = await gate.verdict(m.seq);
    } catch {
      m.nak(1000);
      return;
    }
    // The gate has counted, logged and recorded the refusal.
    if (!verdict.ok) {
      m.ack();
      return;
    }
    const workflowId = nodeWorkflowId(
      command.rolloutId,
      command.nodeId,
      command.kind === 'rollback' ? 'rollback' : 'upgrade',
    );
    try {
      if (absent.get(workflowId) && (await rolloutOpen(command.rolloutId))) {
        m.nak(holdDelayMs(m.info.deliveryCount));
        return;
      }
      await client.workflow.getHandle(workflowId).signal(event.type as NodeSignalType, event);
      delivered++;
      m.ack();
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) {
        logger.warn({ err, workflowId, event: event.type }, 'signal failed; will retry');
        m.nak(1000);
        return;
      }
      try {
        await unsignalled(m, workflowId, command.rolloutId, event.type);
      } catch (lookupErr) {
        logger.warn({ err: lookupErr, workflowId, event: event.type }, 'workflow lookup failed; will retry');
        m.nak(1000);
      }
    }
  }

  /** Holds an event whose workflow is not started yet while its rollout runs; drops it otherwise. */
  async function unsignalled(m: JsMsg, workflowId: string, rolloutId: string, type: string): Promise<void> {
    const state = await workflowState(workflowId);
    if (state === 'running') {
      // Started between the signal and the lookup: offer it again right away.
      m.nak();
    } else if (state === 'absent' && (await rolloutOpen(rolloutId))) {
      absent.set(workflowId, true);
      const delay = holdDelayMs(m.info.deliveryCount);
      logger.debug({ workflowId, event: type, delay }, 'holding an event for a workflow not started yet');
      m.nak(delay);
    } else {
      logger.debug({ workflowId, event: type, state }, 'no running workflow for this event');
      m.ack();
    }
  }

  async function workflowState(workflowId: string): Promise<'absent' | 'running' | 'closed'> {
    try {
      const { status } = await client.workflow.getHandle(workflowId).describe();
      return status.name === 'RUNNING' || status.name === 'PAUSED' ? 'running' : 'closed';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return 'absent';
      throw err;
    }
  }

  /** Whether the rollout (its latest run, after continue-as-new) still runs; cached briefly. */
  function rolloutOpen(rolloutId: string): Promise<boolean> {
    let open = openRollouts.get(rolloutId);
    if (!open) {
      open = workflowState(rolloutWorkflowId(rolloutId)).then((state) => state === 'running');
      openRollouts.set(rolloutId, open);
      open.catch(() => openRollouts.delete(rolloutId));
    }
    return open;
  }

  const loop = (async () => {
    for await (const m of messages) {
      while (inFlight >= MAX_IN_FLIGHT) await new Promise<void>((r) => idle.push(r));
      inFlight++;
      void handle(m).finally(() => {
        inFlight--;
        idle.shift()?.();
      });
    }
  })();

  return {
    delivered: () => delivered,
    async stop() {
      await messages.close().catch(() => undefined);
      await loop.catch(() => undefined);
      while (inFlight > 0) await new Promise<void>((r) => idle.push(r));
    },
  };
}
