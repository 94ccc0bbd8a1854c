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
import { EVENTS_STREAM, NodeEvent, nodeEventsFilter } from '../schema/index.ts';
import {
  NODE_SIGNAL_TYPES,
  nodeWorkflowId,
  parseCommandId,
  type NodeSignalType,
} from '../workflows/definitions.ts';

/** Durable consumer name of the bridge; every worker shares it, so each event is handled once. */
export const BRIDGE_CONSUMER = 'slotflow-event-bridge';
const SIGNAL_TYPES: ReadonlySet<string> = new Set(NODE_SIGNAL_TYPES);
const MAX_IN_FLIGHT = 64;

export interface EventBridge {
  stop(): Promise<void>;
  /** Events signalled so far (for logs and benchmarks). */
  delivered(): number;
}

async function ensureConsumer(log: EventLog): Promise<void> {
  const config = {
    durable_name: BRIDGE_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    // Events older than the bridge concern no workflow it could signal.
    deliver_policy: DeliverPolicy.New,
    filter_subject: nodeEventsFilter(),
    ack_wait: 30_000_000_000,
    max_ack_pending: 4096,
    max_deliver: -1,
  };
  try {
    await log.jsm.consumers.info(EVENTS_STREAM, BRIDGE_CONSUMER);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
    await log.jsm.consumers.add(EVENTS_STREAM, config);
  }
}

/**
 * Signals each node event to the workflow that sent the command it answers, at least once.
 * Workflows ignore a second delivery by event id; events for a workflow that is gone are acked.
 */
export async function startEventBridge({
  log,
  client,
  logger,
}: {
  log: EventLog;
  client: Client;
  logger: Logger;
}): Promise<EventBridge> {
  await ensureConsumer(log);
  const consumer = await log.js.consumers.get(EVENTS_STREAM, BRIDGE_CONSUMER);
  const messages = await consumer.consume({ max_messages: 256 });
  let inFlight = 0;
  let delivered = 0;
  const idle: (() => void)[] = [];

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
    const workflowId = nodeWorkflowId(
      command.rolloutId,
      command.nodeId,
      command.kind === 'rollback' ? 'rollback' : 'upgrade',
    );
    try {
      await client.workflow.getHandle(workflowId).signal(event.type as NodeSignalType, event);
      delivered++;
      m.ack();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        logger.debug({ workflowId, event: event.type }, 'no running workflow for this event');
        m.ack();
      } else {
        logger.warn({ err, workflowId, event: event.type }, 'signal failed; will retry');
        m.nak(1000);
      }
    }
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
