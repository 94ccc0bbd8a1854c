// Events/s through the worker's event bridge into real workflows on a Temporal dev server, with
// the trust gate verifying every node event (a fresh gate, replaying the log from sequence 1)
// against the same bridge with a pass-through gate. The pass-through gate exists only here: the
// product has no way to turn verification off.
import { fileURLToPath } from 'node:url';
import { AckPolicy, DeliverPolicy, JetStreamApiError } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { openEventLog, type EventLog } from '../eventlog/index.ts';
import { createLogger } from '../runtime/log.ts';
import { EVENTS_STREAM, nodeEventsFilter, type DomainEventInput } from '../schema/index.ts';
import type { TrustedKeys } from '../signing/index.ts';
import { createRejectionRecorder, emptyTrustState, startTrustGate, type TrustGate } from '../trust/index.ts';
import { BRIDGE_CONSUMER, startEventBridge } from '../workers/event-bridge.ts';
import { installTemporalRuntime } from '../workers/temporal-runtime.ts';
import { NODE_SIGNAL_TYPES, nodeWorkflowId, parseCommandId } from '../workflows/definitions.ts';
import { startStack } from '../test/helpers/servers.ts';
import { appendAll, PUBLISH_WINDOW } from './event-log-publish.ts';

const TASK_QUEUE = 'slotflow-bench-signal-sink';
const WORKFLOWS_PATH = fileURLToPath(new URL('./workflows/signal-sink.ts', import.meta.url));
const SIGNAL_TYPES: ReadonlySet<string> = new Set(NODE_SIGNAL_TYPES);

/** A gate that passes everything without reading the log: the bridge as it was before trust. */
function passThroughGate(): TrustGate {
  const state = emptyTrustState();
  return {
    verdict: () => Promise.resolve({ ok: true, changed: false }),
    state: () => state,
    progress: () => ({ fromSeq: 1, read: 0, applied: 0 }),
    stop: () => Promise.resolve(),
  };
}

/** The node workflows the story's events go to, with how many signals each gets. */
function signalsByWorkflow(story: readonly DomainEventInput[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of story as readonly { type: string; commandId?: string }[]) {
    if (!SIGNAL_TYPES.has(e.type) || !e.commandId) continue;
    const command = parseCommandId(e.commandId);
    if (!command || command.kind === 'cancel') continue;
    const id = nodeWorkflowId(
      command.rolloutId,
      command.nodeId,
      command.kind === 'rollback' ? 'rollback' : 'upgrade',
    );
    out.set(id, (out.get(id) ?? 0) + 1);
  }
  return out;
}

/** A bridge consumer that starts at sequence 1, so a round delivers the whole stored story. */
async function resetBridgeConsumer(log: EventLog): Promise<void> {
  await log.jsm.consumers.delete(EVENTS_STREAM, BRIDGE_CONSUMER).catch((err: unknown) => {
    if (!(err instanceof JetStreamApiError)) throw err;
  });
  await log.jsm.consumers.add(EVENTS_STREAM, {
    durable_name: BRIDGE_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: nodeEventsFilter(),
    ack_wait: 30_000_000_000,
    max_ack_pending: -1,
    max_deliver: -1,
  });
}

/** One round: fresh sink workflows, a fresh bridge; events/s until every signal was delivered. */
async function bridgeRound(
  ctx: { log: EventLog; client: Client; workflows: Map<string, number>; total: number; deadlineMs: number },
  gate: () => TrustGate,
): Promise<number> {
  const { log, client, workflows, total } = ctx;
  const handles = await Promise.all(
    [...workflows].map(([workflowId, expected]) =>
      client.workflow.start('signalSinkWorkflow', { workflowId, taskQueue: TASK_QUEUE, args: [expected] }),
    ),
  );
  await resetBridgeConsumer(log);
  const logger = createLogger('bench:bridge');
  logger.level = 'error';
  const started = performance.now();
  const g = gate();
  const bridge = await startEventBridge({ log, client, logger, gate: g });
  try {
    while (bridge.delivered() < total) {
      if (performance.now() - started > ctx.deadlineMs) {
        throw new Error(
          `cut off: ${bridge.delivered()} of ${total} signals delivered in ${Math.round(ctx.deadlineMs / 1000)} s`,
        );
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    const seconds = (performance.now() - started) / 1000;
    // Every workflow got all its events: the signals reached workflows, not just the server.
    const got = await Promise.all(handles.map((h) => h.result() as Promise<number>));
    const expected = [...workflows.values()];
    if (got.some((n, i) => n !== expected[i])) throw new Error('a sink workflow ended with the wrong count');
    return total / seconds;
  } finally {
    await bridge.stop();
    await g.stop();
  }
}

/** Events/s through the bridge with verification on and off, `rounds` each, taken in turns. */
export async function measureBridge(init: {
  story: readonly DomainEventInput[];
  trustedKeys: TrustedKeys;
  rounds: number;
  deadlineMs: number;
  say: (line: string) => void;
}): Promise<{ verified: number[]; unverified: number[]; signals: number; workflows: number }> {
  const stack = await startStack();
  let nc: NatsConnection | undefined;
  let connection: NativeConnection | undefined;
  try {
    const logger = createLogger('bench:bridge');
    if (!process.env['SLOTFLOW_LOG_LEVEL']) logger.level = 'warn';
    installTemporalRuntime(logger);
    nc = await stack.nats.connect();
    const log = await openEventLog(nc);
    await appendAll(log, init.story, PUBLISH_WINDOW);
    const client = await stack.temporal.client();
    connection = await NativeConnection.connect({ address: stack.temporal.address });
    const worker = await Worker.create({
      connection,
      namespace: stack.temporal.namespace,
      taskQueue: TASK_QUEUE,
      workflowsPath: WORKFLOWS_PATH,
    });
    const running = worker.run();
    try {
      const workflows = signalsByWorkflow(init.story);
      const total = [...workflows.values()].reduce((a, b) => a + b, 0);
      const ctx = { log, client, workflows, total, deadlineMs: init.deadlineMs };
      const recorder = createRejectionRecorder(undefined, logger);
      const verifying = () => startTrustGate({ log, trustedKeys: init.trustedKeys, recorder, logger });
      const verified: number[] = [];
      const unverified: number[] = [];
      for (let r = 0; r < init.rounds; r++) {
        init.say(
          `trust: bridge round ${r + 1}/${init.rounds} (${total} signals to ${workflows.size} workflows)`,
        );
        // Alternate which goes first, so neither always runs on a warmer server.
        if (r % 2 === 0) {
          unverified.push(await bridgeRound(ctx, passThroughGate));
          verified.push(await bridgeRound(ctx, verifying));
        } else {
          verified.push(await bridgeRound(ctx, verifying));
          unverified.push(await bridgeRound(ctx, passThroughGate));
        }
      }
      if (recorder.count() > 0) throw new Error(`the gate refused ${recorder.count()} of the story's events`);
      return { verified, unverified, signals: total, workflows: workflows.size };
    } finally {
      worker.shutdown();
      await running;
    }
  } finally {
    await connection?.close();
    await nc?.close();
    await stack.stop();
  }
}
