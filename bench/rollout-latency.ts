// Latencies of one finished rollout, read from its durable records rather than from hooks in the
// product: the signed commands (their `issuedAt`), the node events (their `at`) and the node
// workflows' histories (when the workflow decided, when it advanced past an event).
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { COMMANDS_STREAM, COMMANDS_SUBJECTS } from '../schema/index.ts';
import { openEventLog } from '../eventlog/index.ts';

/** Latency samples in ms. */
export interface RolloutLatencies {
  /** Node workflow schedules sendCommand → node accepted (minus the simulated step). */
  decisionToAccept: number[];
  /** Command `issuedAt` → node accepted (minus the simulated step). */
  issuedToAccept: number[];
  /** Node event `at` → the node workflow's next completed workflow task (it acted on it). */
  eventToAdvance: number[];
  /** The part of it until Temporal recorded the signal (event log → bridge → signal). */
  eventToSignal: number[];
  /** Node workflows whose history was read. */
  workflows: number;
}

type Timestamp =
  { seconds?: { toString(): string } | number | null; nanos?: number | null } | null | undefined;

const msOf = (ts: Timestamp): number | undefined =>
  ts ? Number(ts.seconds?.toString() ?? 0) * 1000 + (ts.nanos ?? 0) / 1e6 : undefined;

/** Every message of a stream under `filter`, decoded as JSON, through an ephemeral consumer. */
async function readStream(nc: NatsConnection, stream: string, filter: string): Promise<unknown[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.consumers.add(stream, {
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
    filter_subject: filter,
    inactive_threshold: nanos(30_000),
    mem_storage: true,
  });
  const out: unknown[] = [];
  try {
    let pending = info.num_pending;
    const consumer = await jetstream(nc).consumers.get(stream, info.name);
    while (pending > 0) {
      const batch = await consumer.fetch({ max_messages: Math.min(pending, 1000), expires: 5000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        pending = m.info.pending;
        out.push(m.json());
      }
      if (got === 0) break;
    }
  } finally {
    await jsm.consumers.delete(stream, info.name).catch(() => undefined);
  }
  return out;
}

/** Runs `fn` over items with at most `limit` at once. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/**
 * Reads the latencies of rollout `rolloutId`. `stepMs` is the simulator's pause before each
 * event; it stands for the node's own work and is taken out of the accept latencies.
 */
export async function rolloutLatencies({
  nc,
  client,
  rolloutId,
  stepMs,
}: {
  nc: NatsConnection;
  client: Client;
  rolloutId: string;
  stepMs: number;
}): Promise<RolloutLatencies> {
  const issued = new Map<string, number>();
  for (const raw of await readStream(nc, COMMANDS_STREAM, COMMANDS_SUBJECTS)) {
    const command = (raw as { command?: { commandId?: string; issuedAt?: string; rolloutId?: string } })
      .command;
    if (command?.rolloutId === rolloutId && command.commandId && command.issuedAt)
      issued.set(command.commandId, Date.parse(command.issuedAt));
  }
  const accepted = new Map<string, number>();
  const log = await openEventLog(nc);
  for await (const { event } of log.replay({ filters: ['slotflow.evt.node.*.UpgradeCommandAccepted'] })) {
    if (event.type === 'UpgradeCommandAccepted' && event.rolloutId === rolloutId && event.commandId)
      accepted.set(event.commandId, Date.parse(event.at));
  }
  const issuedToAccept: number[] = [];
  for (const [commandId, at] of accepted) {
    const sent = issued.get(commandId);
    if (sent !== undefined) issuedToAccept.push(at - sent - stepMs);
  }

  const nodeRuns: { workflowId: string; runId: string }[] = [];
  for await (const wf of client.workflow.list({ query: `RolloutId="${rolloutId}"` })) {
    if (wf.workflowId.startsWith('node/') && !wf.workflowId.endsWith('/rollback'))
      nodeRuns.push({ workflowId: wf.workflowId, runId: wf.runId });
  }
  const decisionToAccept: number[] = [];
  const eventToAdvance: number[] = [];
  const eventToSignal: number[] = [];
  await eachLimited(nodeRuns, 16, async ({ workflowId, runId }) => {
    const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    const events = history.events ?? [];
    let awaiting: number[] = [];
    let commandScheduled: number | undefined;
    let commandId: string | undefined;
    for (const e of events) {
      const time = msOf(e.eventTime as Timestamp);
      if (time === undefined) continue;
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled?.activityType?.name === 'sendCommand' && commandScheduled === undefined) {
        commandScheduled = time;
        const input = scheduled.input?.payloads?.[0];
        commandId = input
          ? defaultPayloadConverter.fromPayload<{ commandId?: string }>(input as Payload).commandId
          : undefined;
      }
      const signal = e.workflowExecutionSignaledEventAttributes;
      const payload = signal?.input?.payloads?.[0];
      if (payload) {
        const at = defaultPayloadConverter.fromPayload<{ at?: string }>(payload as Payload).at;
        if (at) {
          awaiting.push(Date.parse(at));
          eventToSignal.push(time - Date.parse(at));
        }
      }
      if (e.workflowTaskCompletedEventAttributes && awaiting.length > 0) {
        for (const at of awaiting) eventToAdvance.push(time - at);
        awaiting = [];
      }
    }
    const acceptedAt = commandId ? accepted.get(commandId) : undefined;
    if (commandScheduled !== undefined && acceptedAt !== undefined)
      decisionToAccept.push(acceptedAt - commandScheduled - stepMs);
  });
  return { decisionToAccept, issuedToAccept, eventToAdvance, eventToSignal, workflows: nodeRuns.length };
}
