// The Temporal histories of a rollout: every run of its workflow (continue-as-new) and of every
// child it started (image build, node upgrades, rollbacks), read from the server; and what those
// histories say the workflows sent. Counting here sees every command the workflows asked for,
// where the command stream and the agents would hide a re-sent one (Nats-Msg-Id, nonces).
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import proto from '@temporalio/proto';
import { rolloutWorkflowId } from '../../workflows/definitions.ts';
import { rolloutEvents } from './rollouts.ts';

const { temporal } = proto;
type History = proto.temporal.api.history.v1.IHistory;

/** Where the recorded histories that the replay test replays live. */
export const HISTORIES_DIR = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));

/**
 * A history as plain JSON: the generated protobuf classes' object form (int64 as strings, enums by
 * name, bytes as base64). It round-trips exactly through historyFromObject. (The SDK's own
 * historyToJSON/historyFromJSON are not used: with the protobufjs that @temporalio/common resolves
 * here they throw "type must be a Type".)
 */
export function historyToObject(history: History): unknown {
  return temporal.api.history.v1.History.toObject(temporal.api.history.v1.History.fromObject(history), {
    longs: String,
    enums: String,
    bytes: String,
  });
}

/** A history message from historyToObject's form, as Worker.runReplayHistories takes it. */
export function historyFromObject(json: unknown): proto.temporal.api.history.v1.History {
  return temporal.api.history.v1.History.fromObject(json as Record<string, unknown>);
}

/** One recorded history file: a scenario and every workflow run it produced (histories as JSON). */
export interface HistoryFixture {
  readonly scenario: string;
  readonly description: string;
  readonly workflows: { workflowId: string; runId: string; workflowType: string; history: unknown }[];
}

/** One run of one workflow with its full history. */
export interface RecordedRun {
  readonly workflowId: string;
  readonly runId: string;
  readonly workflowType: string;
  readonly history: History;
}

/** A command a workflow scheduled through the sendCommand activity. */
export interface SentCommand {
  readonly workflowId: string;
  readonly nodeId: string;
  readonly type: string;
  readonly commandId: string;
}

async function fetchRun(client: Client, workflowId: string, runId?: string): Promise<RecordedRun> {
  const handle = client.workflow.getHandle(workflowId, runId);
  const history = await handle.fetchHistory();
  const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  const actualRunId = runId ?? (await handle.describe()).runId;
  return {
    workflowId,
    runId: actualRunId,
    workflowType: started?.workflowType?.name ?? 'unknown',
    history,
  };
}

/** Every run of a workflow, first to last, from any one of them (default: the latest). */
export async function runsOf(client: Client, workflowId: string, runId?: string): Promise<RecordedRun[]> {
  const some = await fetchRun(client, workflowId, runId);
  const runs = [some];
  for (
    let prev = some.history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
    prev;
    prev = runs[0]?.history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId
  ) {
    runs.unshift(await fetchRun(client, workflowId, prev));
  }
  for (
    let next = some.history.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
    next;
    next = runs.at(-1)?.history.events?.at(-1)
      ?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId
  ) {
    runs.push(await fetchRun(client, workflowId, next));
  }
  return runs;
}

/** Every run of a workflow and, depth first, of every child workflow its runs started. */
export async function workflowTree(
  client: Client,
  workflowId: string,
  runId?: string,
): Promise<RecordedRun[]> {
  const out: RecordedRun[] = [];
  for (const run of await runsOf(client, workflowId, runId)) {
    out.push(run);
    for (const event of run.history.events ?? []) {
      const child = event.childWorkflowExecutionStartedEventAttributes?.workflowExecution;
      if (child?.workflowId && child.runId)
        out.push(...(await workflowTree(client, child.workflowId, child.runId)));
    }
  }
  return out;
}

/** The rollout's workflow (every run) and every workflow it started. */
export function rolloutHistories(client: Client, rolloutId: string): Promise<RecordedRun[]> {
  return workflowTree(client, rolloutWorkflowId(rolloutId));
}

/** Every command the runs scheduled through sendCommand, in history order per run. */
export function commandsSent(runs: readonly RecordedRun[]): SentCommand[] {
  const out: SentCommand[] = [];
  for (const run of runs) {
    for (const event of run.history.events ?? []) {
      const scheduled = event.activityTaskScheduledEventAttributes;
      if (scheduled?.activityType?.name !== 'sendCommand') continue;
      const payload = scheduled.input?.payloads?.[0];
      const request = payload
        ? defaultPayloadConverter.fromPayload<{ nodeId: string; type: string; commandId: string }>(payload)
        : undefined;
      if (!request)
        throw new Error(`${run.workflowId}: a sendCommand without input in event ${event.eventId}`);
      out.push({
        workflowId: run.workflowId,
        nodeId: request.nodeId,
        type: request.type,
        commandId: request.commandId,
      });
    }
  }
  return out;
}

/** Command types sent to each node, in the order their workflows sent them. */
export function commandsPerNode(runs: readonly RecordedRun[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const c of commandsSent(runs)) out.set(c.nodeId, [...(out.get(c.nodeId) ?? []), c.type]);
  return out;
}

/** Activity types a workflow's latest run scheduled, in order. */
export async function activitiesOf(handle: WorkflowHandle): Promise<string[]> {
  const history = await handle.fetchHistory();
  return (history.events ?? []).flatMap((e) => {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    return name ? [name] : [];
  });
}

/** An event a workflow recorded through the recordEvents activity. */
export interface RecordedEvent {
  readonly workflowId: string;
  readonly id: string;
  readonly type: string;
}

/** Every event the runs scheduled through recordEvents, in history order per run. */
export function eventsRecorded(runs: readonly RecordedRun[]): RecordedEvent[] {
  const out: RecordedEvent[] = [];
  for (const run of runs) {
    for (const event of run.history.events ?? []) {
      const scheduled = event.activityTaskScheduledEventAttributes;
      if (scheduled?.activityType?.name !== 'recordEvents') continue;
      const payload = scheduled.input?.payloads?.[0];
      const events = payload
        ? defaultPayloadConverter.fromPayload<{ id: string; type: string }[]>(payload)
        : [];
      for (const e of events) out.push({ workflowId: run.workflowId, id: e.id, type: e.type });
    }
  }
  return out;
}

/**
 * Event ids the workflows recorded more than once (the stream would drop the repeats by id, so
 * only the histories show them) and ids they recorded that the stream does not hold (lost).
 */
export function recordedAgainstStored(
  runs: readonly RecordedRun[],
  storedIds: Iterable<string>,
): { twice: string[]; lost: string[] } {
  const times = new Map<string, number>();
  for (const e of eventsRecorded(runs)) times.set(e.id, (times.get(e.id) ?? 0) + 1);
  const stored = new Set(storedIds);
  return {
    twice: [...times].filter(([, n]) => n > 1).map(([id, n]) => `${id} x${n}`),
    lost: [...times.keys()].filter((id) => !stored.has(id)),
  };
}

/**
 * A finished rollout's histories, checked against the event stream: every event its workflows
 * recorded was recorded once and is stored. Returns the runs and the commands sent per node.
 */
export async function checkRolloutSends(
  client: Client,
  nc: NatsConnection,
  rolloutId: string,
): Promise<{ runs: RecordedRun[]; sent: Map<string, string[]> }> {
  const runs = await rolloutHistories(client, rolloutId);
  const stored = (await rolloutEvents(nc, rolloutId)).map((e) => e.event.id);
  assert.deepEqual(
    recordedAgainstStored(runs, stored),
    { twice: [], lost: [] },
    `${rolloutId}: every event the workflows recorded was recorded once and is stored`,
  );
  return { runs, sent: commandsPerNode(runs) };
}

/** A sendCommand activity that completed: its command is on the node's command stream. */
export interface PublishedCommand extends SentCommand {
  /** The attempt that completed (above 1: earlier attempts died with a worker or failed). */
  readonly attempt: number;
}

/**
 * Every sendCommand that completed, from the histories: the commands the workflows published.
 * Activity retries inside one scheduled activity publish the same command id; a second scheduled
 * send (a workflow that repeated the step) shows as a second entry.
 */
export function commandsPublished(runs: readonly RecordedRun[]): PublishedCommand[] {
  const out: PublishedCommand[] = [];
  for (const run of runs) {
    const scheduled = new Map<string, { nodeId: string; type: string; commandId: string }>();
    const attempts = new Map<string, number>();
    for (const event of run.history.events ?? []) {
      const id = String(event.eventId);
      const s = event.activityTaskScheduledEventAttributes;
      if (s?.activityType?.name === 'sendCommand') {
        const payload = s.input?.payloads?.[0];
        if (!payload) throw new Error(`${run.workflowId}: a sendCommand without input in event ${id}`);
        scheduled.set(
          id,
          defaultPayloadConverter.fromPayload<{ nodeId: string; type: string; commandId: string }>(payload),
        );
      }
      const started = event.activityTaskStartedEventAttributes;
      if (started) attempts.set(String(started.scheduledEventId), started.attempt ?? 1);
      const done = event.activityTaskCompletedEventAttributes;
      const request = done ? scheduled.get(String(done.scheduledEventId)) : undefined;
      if (done && request) {
        out.push({
          workflowId: run.workflowId,
          nodeId: request.nodeId,
          type: request.type,
          commandId: request.commandId,
          attempt: attempts.get(String(done.scheduledEventId)) ?? 1,
        });
      }
    }
  }
  return out;
}
