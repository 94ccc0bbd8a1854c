// Simulated nodes for load tests, benchmarks and workflow tests: they speak the real protocol
// (signed commands from JetStream in, node events out) without slots or reboots, and can be told
// to fail a health check, refuse, or stay silent. Real machines run `slotflow agent`.
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerMessages,
  type JsMsg,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { nanos } from '@nats-io/nats-core';
import { openEventLog, type EventLog } from '../eventlog/index.ts';
import {
  COMMANDS_STREAM,
  commandConsumerName,
  commandSubject,
  isKeyCommand,
  type Command,
  type DomainEventInput,
} from '../schema/index.ts';
import {
  createMemoryNonceStore,
  verifyCommand,
  type SigningKey,
  type TrustedKeys,
} from '../signing/index.ts';
import { enrolSimulatedNode, type SimulatedIdentity } from './identity.ts';

export type Behavior = 'ok' | 'fail-health' | 'reject' | 'silent';

export interface SimulatedNodeSpec {
  nodeId: string;
  labels?: Record<string, string>;
  version?: string;
  behavior?: Behavior;
}

export interface SimulatedFleet {
  /** Every command each node received, in order (duplicates included). */
  readonly received: Map<string, Command[]>;
  /** Event types each node emitted per command id. */
  readonly steps: Map<string, string[]>;
  /** Current version per node. */
  readonly versions: Map<string, string>;
  /** Each node's enrolled identity (to speak for a node outside its scripted behaviour). */
  readonly identities: ReadonlyMap<string, SimulatedIdentity>;
  setBehavior(nodeId: string, behavior: Behavior): void;
  stop(): Promise<void>;
}

const digestOf = (v: string) =>
  `sha256:${Buffer.from(v.padEnd(32, '.')).toString('hex').slice(0, 64).padEnd(64, '0')}`;

async function ensureConsumer(log: EventLog, name: string, subject: string): Promise<void> {
  try {
    await log.jsm.consumers.info(COMMANDS_STREAM, name);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
    await log.jsm.consumers.add(COMMANDS_STREAM, {
      durable_name: name,
      filter_subject: subject,
      max_ack_pending: 20_000,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(30_000),
    });
  }
}

/** Registers the nodes and answers their commands until stopped. */
export async function startSimulatedFleet({
  nc,
  trustedKeys,
  controlPlaneKey,
  nodes,
  stepDelayMs = 5,
  sharedConsumer,
}: {
  nc: NatsConnection;
  trustedKeys: TrustedKeys;
  /** Enrols the simulated nodes (each gets a key in memory and signs its events). */
  controlPlaneKey: SigningKey;
  nodes: SimulatedNodeSpec[];
  /** Pause before each event, standing in for the time a real step takes. */
  stepDelayMs?: number;
  /**
   * Serve every node from one consumer named so (for thousands of nodes); by default each node
   * has its own durable consumer, as real agents do.
   */
  sharedConsumer?: string;
}): Promise<SimulatedFleet> {
  const log = await openEventLog(nc);
  const received = new Map<string, Command[]>();
  const steps = new Map<string, string[]>();
  const versions = new Map<string, string>();
  const behaviors = new Map<string, Behavior>();
  const previous = new Map<string, string>();
  const identities = new Map<string, SimulatedIdentity>();
  const signed = (nodeId: string, event: DomainEventInput) => identities.get(nodeId)!.sign(event);
  const subscriptions: ConsumerMessages[] = [];
  const loops: Promise<void>[] = [];
  let seq = 0;
  const now = () => new Date().toISOString();
  const pause = () => new Promise((r) => setTimeout(r, stepDelayMs));

  async function emit(
    nodeId: string,
    command: Command,
    type: string,
    body: Record<string, unknown>,
  ): Promise<void> {
    await pause();
    const key = command.commandId;
    const list = steps.get(key) ?? [];
    list.push(type);
    steps.set(key, list);
    await log.append(
      signed(nodeId, {
        v: 1,
        id: `${nodeId}.${command.commandId.replaceAll(':', '.')}.${type}.${list.length}`,
        at: now(),
        type,
        nodeId,
        rolloutId: command.rolloutId,
        commandId: command.commandId,
        ...body,
      } as DomainEventInput),
    );
  }

  async function handle(nodeId: string, command: Command): Promise<void> {
    const behavior = behaviors.get(nodeId) ?? 'ok';
    const current = versions.get(nodeId) as string;
    if (behavior === 'silent') return;
    if (behavior === 'reject' && command.type === 'Upgrade') {
      await emit(nodeId, command, 'UpgradeCommandRejected', {
        reason: 'busy',
        message: 'scripted rejection',
      });
      return;
    }
    if (command.type === 'Cancel') return;
    await emit(nodeId, command, 'UpgradeCommandAccepted', { command: command.type });
    if (command.type === 'Rollback') {
      const back = previous.get(nodeId) ?? current;
      await emit(nodeId, command, 'NodeRebooting', { slot: 'a' });
      await emit(nodeId, command, 'NodeBooted', { slot: 'a', version: back, trial: false });
      versions.set(nodeId, back);
      await emit(nodeId, command, 'NodeRolledBack', { slot: 'a', version: back, digest: digestOf(back) });
      return;
    }
    const target = command.image.type === 'artifact' ? command.image.manifest.version : command.image.version;
    await emit(nodeId, command, 'ArtifactFetched', {
      digest: command.manifestDigest,
      bytes: 4096,
      source: 'nats',
    });
    await emit(nodeId, command, 'SlotWritten', { slot: 'b', digest: command.manifestDigest });
    await emit(nodeId, command, 'TrialBootArmed', { slot: 'b' });
    await emit(nodeId, command, 'NodeRebooting', { slot: 'b' });
    await emit(nodeId, command, 'NodeBooted', { slot: 'b', version: target, trial: true });
    if (behavior === 'fail-health') {
      await emit(nodeId, command, 'HealthCheckFailed', { check: 'scripted', reason: 'scripted failure' });
      await emit(nodeId, command, 'NodeFellBack', {
        slot: 'a',
        version: current,
        digest: digestOf(current),
        reason: 'scripted failure',
      });
      return;
    }
    await emit(nodeId, command, 'HealthCheckPassed', { checks: ['scripted'] });
    previous.set(nodeId, current);
    versions.set(nodeId, target);
    await emit(nodeId, command, 'UpgradeCommitted', {
      slot: 'b',
      version: target,
      digest: command.manifestDigest,
    });
  }

  const nonces = new Map(nodes.map((n) => [n.nodeId, createMemoryNonceStore()]));
  const chains = new Map<string, Promise<void>>();

  /** Verifies and handles one command message; per-node order is kept, nodes run in parallel. */
  function dispatch(nodeId: string, m: JsMsg): Promise<void> {
    const next = (chains.get(nodeId) ?? Promise.resolve()).then(async () => {
      const store = nonces.get(nodeId);
      if (!store) return m.ack();
      const verdict = await verifyCommand(m.json(), { trustedKeys, nodeId, nonces: store });
      // The simulated fleet answers rollout commands only; key commands need a real agent.
      if (verdict.ok && !isKeyCommand(verdict.command)) {
        received.get(nodeId)?.push(verdict.command);
        await handle(nodeId, verdict.command);
      }
      m.ack();
    });
    chains.set(
      nodeId,
      next.catch(() => undefined),
    );
    return next;
  }

  function serve(messages: ConsumerMessages, nodeOf: (subject: string) => string): void {
    subscriptions.push(messages);
    loops.push(
      (async () => {
        for await (const m of messages) void dispatch(nodeOf(m.subject), m).catch(() => m.nak(500));
      })(),
    );
  }

  for (const node of nodes) {
    const version = node.version ?? '1.0.0';
    versions.set(node.nodeId, version);
    behaviors.set(node.nodeId, node.behavior ?? 'ok');
    received.set(node.nodeId, []);
    identities.set(node.nodeId, await enrolSimulatedNode(log, controlPlaneKey, node.nodeId));
    await log.append(
      signed(node.nodeId, {
        v: 1,
        id: `${node.nodeId}.registered.${++seq}.${Date.now()}`,
        at: now(),
        type: 'NodeRegistered',
        nodeId: node.nodeId,
        labels: node.labels ?? {},
        version,
        activeSlot: 'a',
        agentVersion: 'simulated',
      }),
    );
    if (!sharedConsumer) {
      await ensureConsumer(log, commandConsumerName(node.nodeId), commandSubject(node.nodeId));
      const consumer = await log.js.consumers.get(COMMANDS_STREAM, commandConsumerName(node.nodeId));
      serve(await consumer.consume({ max_messages: 16 }), () => node.nodeId);
    }
  }
  if (sharedConsumer) {
    await ensureConsumer(log, sharedConsumer, commandSubject('*'));
    const consumer = await log.js.consumers.get(COMMANDS_STREAM, sharedConsumer);
    serve(await consumer.consume({ max_messages: 1024 }), (subject) =>
      subject.slice(subject.lastIndexOf('.') + 1),
    );
  }

  return {
    received,
    steps,
    versions,
    identities,
    setBehavior: (nodeId, behavior) => behaviors.set(nodeId, behavior),
    async stop() {
      for (const s of subscriptions) await s.close().catch(() => undefined);
      await Promise.allSettled(loops);
    },
  };
}
