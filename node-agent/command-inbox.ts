import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import {
  COMMANDS_STREAM,
  commandConsumerName,
  commandSubject,
  type Command,
  type NodeEvent,
  type SignedCommand,
  type SignedPlan,
} from '../schema/index.ts';
import { verifyCommand, verifyPlan, type NonceStore, type Verification } from '../signing/index.ts';
import { decide, type Decision } from './command-decision.ts';
import { describeError } from './errors.ts';
import { eventsFor, nodeEvent } from './events.ts';
import type { Executor } from './executor.ts';
import type { Journal } from './journal.ts';
import { plannedUpgrade } from './plans.ts';
import type { SlotDriver } from './slot-drivers/driver.ts';
import { Outcome, transition } from './transitions.ts';
import type { TrustStore } from './trusted-keys.ts';
import type { VersionFloor } from './version-floor.ts';

/** Tolerated clock difference between control plane and node (as signing/verify.ts). */
const CLOCK_SKEW_MS = 60_000;

export interface InboxDeps {
  readonly nodeId: string;
  readonly journal: Journal;
  readonly driver: SlotDriver;
  readonly executor: Executor;
  /** The control-plane keys the node trusts and refuses (changed by key commands). */
  readonly trust: TrustStore;
  /** The anti-rollback floor. */
  readonly floor: VersionFloor;
  /** Commands valid for longer than this are refused. */
  readonly maxCommandLifetimeMs: number;
  readonly healthChecks: readonly string[];
  readonly initialVersion: string;
  readonly log: Logger;
  /** Counts handled commands (metrics). */
  readonly count: (outcome: 'accepted' | 'rejected') => void;
  /** A command from NATS verified: re-gossip it to peers. */
  readonly onVerified?: (signed: SignedCommand) => void;
  /** A command was settled without an operation (refused, or already done): `skipped`/`succeeded`. */
  readonly onSettled?: (command: Command, outcome: 'succeeded' | 'skipped') => void;
}

/** Where a command came from; all three go through the same checks. */
export type CommandOrigin = 'nats' | 'gossip' | 'plan';

/** Reads this node's durable consumer and turns each command into journal entries. */
export interface CommandInbox {
  start(nc: NatsConnection): void;
  stop(): Promise<void>;
  /** Handles one raw command (exported for the consumer loop and for tests). */
  handle(data: string, origin?: CommandOrigin): Promise<void>;
  /**
   * Acts on a signed plan's upgrade for this node, as on the command it stands for: the plan's
   * signature, expiry and target are checked and its nonce is used once. Does nothing while the
   * node is busy or once that command was handled. Returns whether an operation started.
   */
  handlePlan(signed: SignedPlan): Promise<boolean>;
}

/**
 * How long a delivered command may stay unacknowledged before it is delivered again. Handling
 * takes one journal commit, so a short wait costs nothing and an agent that died holding a
 * command (power loss) gets it back a few seconds after it returns.
 */
const ACK_WAIT_MS = 5_000;

/** Creates the node's durable pull consumer, or brings an existing one to this configuration. */
export async function ensureConsumer(nc: NatsConnection, nodeId: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const name = commandConsumerName(nodeId);
  const config = {
    filter_subject: commandSubject(nodeId),
    ack_wait: nanos(ACK_WAIT_MS),
    max_deliver: -1,
    description: `signed commands for node ${nodeId}`,
  };
  try {
    const info = await jsm.consumers.info(COMMANDS_STREAM, name);
    if (info.config.ack_wait !== config.ack_wait || info.config.filter_subject !== config.filter_subject) {
      await jsm.consumers.update(COMMANDS_STREAM, name, config);
    }
    return;
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
  }
  try {
    await jsm.consumers.add(COMMANDS_STREAM, {
      ...config,
      durable_name: name,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
    });
  } catch (err) {
    if (!/already (exists|in use)/i.test((err as Error).message)) throw err;
  }
}

/**
 * One command at a time: verify (signature, key, node, freshness, nonce), decide, commit the
 * outcome (state, events, nonce) to the journal, and only then acknowledge the message, so a
 * crash before the commit means the command is delivered again and nothing is lost.
 */
export function createCommandInbox(deps: InboxDeps): CommandInbox {
  const { journal, log, nodeId } = deps;
  let stopped = false;
  let loop: Promise<void> | undefined;
  // Nonces are committed together with the command's outcome; until then a redelivery is not a replay.
  const nonces: NonceStore = { claim: async (nonce) => !(nonce in journal.data.nonces) };

  async function apply(decision: Decision, v: Verification): Promise<void> {
    const nonce = v.ok ? { [v.command.nonce]: Date.parse(v.command.expiresAt) + CLOCK_SKEW_MS } : {};
    const record = (events: NodeEvent[], handled?: { commandId: string; final: NodeEvent }) =>
      journal.commit((d) => {
        Object.assign(d.nonces, nonce);
        d.outbox.push(...events);
        if (handled) d.handled.push(handled);
      });
    switch (decision.kind) {
      case 'ack':
        return;
      case 'reemit':
        log.info(
          { commandId: 'commandId' in decision.event ? decision.event.commandId : undefined },
          'command delivered again; re-sending its result',
        );
        await record([decision.event]);
        return;
      // The trust file is written first: a crash before the journal commit redelivers the
      // command, and trusting or revoking a key again is harmless.
      case 'trust': {
        const { command, signedBy } = decision;
        await deps.trust.trust(command, signedBy);
        log.info({ keyId: command.trustKeyId, signedBy }, 'control-plane key trusted');
        const event = nodeEvent(nodeId, 'ControlPlaneKeyTrusted', {
          commandId: command.commandId,
          keyId: command.trustKeyId,
          announcedBy: signedBy,
        });
        deps.count('accepted');
        await record([event], { commandId: command.commandId, final: event });
        return;
      }
      case 'revoke': {
        const { command, signedBy } = decision;
        await deps.trust.revoke(command, signedBy);
        log.info({ keyId: command.revokeKeyId, signedBy }, 'control-plane key revoked');
        const event = nodeEvent(nodeId, 'ControlPlaneKeyRevoked', {
          commandId: command.commandId,
          keyId: command.revokeKeyId,
          revokedBy: signedBy,
        });
        deps.count('accepted');
        await record([event], { commandId: command.commandId, final: event });
        return;
      }
      case 'reject': {
        const c = decision.command;
        const ids = c
          ? { ...('rolloutId' in c ? { rolloutId: c.rolloutId } : {}), commandId: c.commandId }
          : {};
        const event = nodeEvent(nodeId, 'UpgradeCommandRejected', {
          ...ids,
          reason: decision.reason,
          message: decision.message,
        });
        log.warn({ reason: decision.reason, message: decision.message, ...ids }, 'command refused');
        deps.count('rejected');
        await record([event], c ? { commandId: c.commandId, final: event } : undefined);
        if (c?.type === 'Upgrade') deps.onSettled?.(c, 'skipped');
        return;
      }
      case 'cancel': {
        const event = nodeEvent(nodeId, 'UpgradeCommandAccepted', {
          rolloutId: decision.command.rolloutId,
          commandId: decision.command.commandId,
          command: 'Cancel',
        });
        deps.count('accepted');
        await journal.commit((d) => {
          Object.assign(d.nonces, nonce);
          d.outbox.push(event);
          d.handled.push({ commandId: decision.command.commandId, final: event });
          if (decision.cancels && d.op) d.op.cancelRequested = true;
        });
        if (decision.cancels) deps.executor.cancel();
        return;
      }
      case 'already': {
        const types =
          decision.op.kind === 'upgrade'
            ? (['UpgradeCommandAccepted', 'UpgradeCommitted'] as const)
            : (['UpgradeCommandAccepted', 'NodeRolledBack'] as const);
        const events = eventsFor(types, {
          nodeId,
          op: decision.op,
          status: await deps.driver.status(),
          initialVersion: deps.initialVersion,
          detail: {},
        });
        deps.count('accepted');
        await record(events, { commandId: decision.op.command.commandId, final: events.at(-1)! });
        if (decision.op.kind === 'upgrade') {
          await deps.floor.raise(decision.op.toVersion);
          deps.onSettled?.(decision.op.command, 'succeeded');
        }
        return;
      }
      case 'start': {
        const tr = transition(
          'idle',
          decision.op.kind === 'upgrade' ? Outcome.upgradeAccepted : Outcome.rollbackAccepted,
        );
        const events = eventsFor(tr.emit, {
          nodeId,
          op: decision.op,
          initialVersion: deps.initialVersion,
          detail: {},
        });
        deps.count('accepted');
        await journal.commit((d) => {
          Object.assign(d.nonces, nonce);
          d.outbox.push(...events);
          d.state = tr.next;
          d.stateSince = new Date().toISOString();
          d.op = decision.op;
        });
        log.info(
          { commandId: decision.op.command.commandId, kind: decision.op.kind, to: decision.op.toVersion },
          'command accepted',
        );
        deps.executor.wake();
        return;
      }
    }
  }

  // Commands arrive from the consumer, from gossip and from plans: one at a time, in order.
  let queue: Promise<unknown> = Promise.resolve();
  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = queue.then(fn, fn);
    queue = next.catch(() => undefined);
    return next;
  }

  const decideNow = (v: Verification) =>
    decide(v, {
      journal: journal.data,
      status: () => deps.driver.status(),
      accepts: deps.driver.accepts,
      healthChecks: deps.healthChecks,
      initialVersion: deps.initialVersion,
      now: new Date(),
      floor: deps.floor.current(),
      keys: deps.trust.view(),
    });

  function handle(data: string, origin: CommandOrigin = 'nats'): Promise<void> {
    return serial(async () => {
      let raw: unknown;
      let v: Verification;
      try {
        raw = JSON.parse(data);
        v = await verifyCommand(raw, {
          trustedKeys: deps.trust.keys,
          revokedKeys: deps.trust.revoked,
          maxLifetimeMs: deps.maxCommandLifetimeMs,
          nodeId,
          nonces,
          clockSkewMs: CLOCK_SKEW_MS,
        });
      } catch (err) {
        v = {
          ok: false,
          reason: 'malformed',
          message: `malformed command: not JSON (${describeError(err)})`,
        };
      }
      if (v.ok && origin === 'nats') deps.onVerified?.(raw as SignedCommand);
      if (!v.ok && origin === 'gossip') {
        // A peer relayed it; whatever is wrong with it is not this node's to answer for.
        log.warn({ reason: v.reason, message: v.message }, 'command from a peer refused');
        deps.count('rejected');
        return;
      }
      const decision = await decideNow(v);
      // Peers re-gossip what this node already has: only news is worth an answer.
      if (origin === 'gossip' && (decision.kind === 'reemit' || decision.kind === 'ack')) return;
      if (origin === 'gossip')
        log.info({ commandId: v.ok ? v.command.commandId : undefined }, 'command from a peer');
      await apply(decision, v);
    });
  }

  function handlePlan(signed: SignedPlan): Promise<boolean> {
    return serial(async () => {
      const checked = verifyPlan(signed, { trustedKeys: deps.trust.keys, clockSkewMs: CLOCK_SKEW_MS });
      if (!checked.ok) {
        log.warn({ reason: checked.reason, message: checked.message }, 'rollout plan refused');
        return false;
      }
      const command = plannedUpgrade(checked.signed, nodeId);
      if (!command) return false;
      const d = journal.data;
      if (d.op || d.state !== 'idle') return false;
      if (d.handled.some((h) => h.commandId === command.commandId)) return false;
      if (command.nonce in d.nonces) return false;
      const v: Verification = { ok: true, command, keyId: checked.signed.keyId };
      const decision = await decideNow(v);
      // Not now is not never: a busy node tries again when it is idle.
      if (decision.kind === 'reject' && decision.reason === 'busy') return false;
      log.info({ rolloutId: command.rolloutId, commandId: command.commandId }, 'acting on the rollout plan');
      await apply(decision, v);
      return decision.kind === 'start';
    });
  }

  async function consume(nc: NatsConnection): Promise<void> {
    const js = jetstream(nc);
    while (!stopped) {
      try {
        await ensureConsumer(nc, nodeId);
        const consumer = await js.consumers.get(COMMANDS_STREAM, commandConsumerName(nodeId));
        while (!stopped) {
          const m: JsMsg | null = await consumer.next({ expires: 5_000 });
          if (!m) continue;
          try {
            await handle(m.string());
          } catch (err) {
            // Not recorded, so not acknowledged: it comes back once the cause (disk, driver) is gone.
            log.error({ err: describeError(err) }, 'cannot handle a command; it will be delivered again');
            m.nak(5_000);
            continue;
          }
          await m
            .ackAck()
            .catch((err) => log.warn({ err: describeError(err) }, 'ack failed; the command will come again'));
        }
      } catch (err) {
        if (stopped) return;
        log.warn({ err: describeError(err) }, 'command consumer interrupted; retrying');
        await sleep(1_000);
      }
    }
  }

  return {
    handle,
    handlePlan,
    start(nc) {
      loop ??= consume(nc);
    },
    async stop() {
      stopped = true;
      await Promise.race([loop, sleep(6_000)]);
    },
  };
}
