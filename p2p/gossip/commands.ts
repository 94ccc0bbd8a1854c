import type { Logger } from 'pino';
import { CommandGossip, describeIssues, type SignedCommand, type SignedPlan } from '../../schema/index.ts';
import type { TrustedKeys } from '../../signing/index.ts';
import { describeError } from '../errors.ts';
import type { P2pNode } from '../node.ts';
import { COMMANDS_TOPIC } from '../topics.ts';
import { checkRelayedCommand, checkRelayedPlan, type RelayCheckContext } from './signatures.ts';
import { createTopicChannel, type TopicStats, type Verdict } from './topic.ts';

/** Signed commands and plans over `slotflow/commands/1`. */
export interface CommandGossipService {
  /** Gossips a signed command received from NATS (or made here, in tests) and keeps re-gossiping it until it expires. */
  publishCommand(signed: SignedCommand): Promise<void>;
  /** Gossips a signed rollout plan and keeps re-gossiping it until it expires. */
  publishPlan(signed: SignedPlan): Promise<void>;
  /** Commands and plans this node holds and re-gossips (still valid). */
  held(): { commands: SignedCommand[]; plans: SignedPlan[] };
  readonly stats: TopicStats;
  start(): void;
  stop(): void;
}

export interface CommandGossipInit {
  readonly node: P2pNode;
  /** This node; only its own commands reach `onCommand`. */
  readonly nodeId: string;
  readonly trustedKeys: TrustedKeys;
  /**
   * A command for this node arrived over gossip, with a good signature and not expired. Called
   * once per command. The agent must still run its full check (signing/verifyCommand: target,
   * freshness, nonce) exactly as for a command from NATS.
   */
  readonly onCommand?: (signed: SignedCommand) => void | Promise<void>;
  /** A signed plan arrived (good signature, not expired); called once per plan. */
  readonly onPlan?: (signed: SignedPlan) => void | Promise<void>;
  /** Re-gossip held items this often so peers that joined late get them (default 15 s). */
  readonly republishIntervalMs?: number;
  readonly clockSkewMs?: number;
  readonly now?: () => number;
  readonly log?: Logger;
}

type Held = { kind: 'command'; signed: SignedCommand } | { kind: 'plan'; signed: SignedPlan };

function expiresAt(h: Held): number {
  return Date.parse(h.kind === 'command' ? h.signed.command.expiresAt : h.signed.plan.expiresAt);
}

function message(h: Held): CommandGossip {
  return h.kind === 'command'
    ? { v: 1, type: 'command', signed: h.signed }
    : { v: 1, type: 'plan', signed: h.signed };
}

/**
 * Re-gossips the control plane's signed commands and plans. A peer is never trusted for what it
 * relays: each message is parsed and its signature checked inside gossipsub validation, so a
 * forged or malformed one is dropped at the first honest hop and never handed up.
 */
export function createCommandGossip(init: CommandGossipInit): CommandGossipService {
  const log = init.log ?? init.node.log.child({ name: 'p2p:commands' });
  const now = init.now ?? Date.now;
  const ctx: RelayCheckContext = {
    trustedKeys: init.trustedKeys,
    now,
    clockSkewMs: init.clockSkewMs ?? 60_000,
  };
  // Keyed by signature: unique per signed payload, whoever relays it.
  const held = new Map<string, Held>();
  let timer: NodeJS.Timeout | undefined;

  function check(data: unknown): Verdict<Held> {
    const parsed = CommandGossip.safeParse(data);
    if (!parsed.success) {
      return {
        type: 'reject',
        reason: `malformed command gossip: ${describeIssues(parsed.error.issues, data).join('; ')}`,
      };
    }
    const m = parsed.data;
    if (m.type === 'command') {
      const v = checkRelayedCommand(m.signed, ctx);
      return v.type === 'accept' ? { type: 'accept', value: { kind: 'command', signed: v.value } } : v;
    }
    const v = checkRelayedPlan(m.signed, ctx);
    return v.type === 'accept' ? { type: 'accept', value: { kind: 'plan', signed: v.value } } : v;
  }

  async function deliver(h: Held): Promise<void> {
    if (held.has(h.signed.signature)) return;
    held.set(h.signed.signature, h);
    if (h.kind === 'command') {
      if (h.signed.command.nodeId === init.nodeId) await init.onCommand?.(h.signed);
    } else {
      await init.onPlan?.(h.signed);
    }
  }

  const channel = createTopicChannel<Held>({
    node: init.node,
    topic: COMMANDS_TOPIC,
    log,
    check,
    deliver: (h) => deliver(h),
  });

  async function publishHeld(h: Held): Promise<void> {
    const verdict = check(message(h));
    if (verdict.type !== 'accept') {
      throw new Error(`refusing to gossip a ${h.kind} that peers would drop: ${verdict.reason}`);
    }
    held.set(h.signed.signature, h);
    await channel.publish(message(h));
  }

  async function republish(): Promise<void> {
    const t = now();
    for (const [sig, h] of held) {
      if (expiresAt(h) + ctx.clockSkewMs < t) {
        held.delete(sig);
        continue;
      }
      await channel.publish(message(h)).catch((err: unknown) => {
        log.debug({ err: describeError(err) }, 're-gossip failed; trying again next round');
      });
    }
  }

  return {
    stats: channel.stats,
    publishCommand: (signed) => publishHeld({ kind: 'command', signed }),
    publishPlan: (signed) => publishHeld({ kind: 'plan', signed }),
    held() {
      const commands: SignedCommand[] = [];
      const plans: SignedPlan[] = [];
      for (const h of held.values()) {
        if (h.kind === 'command') commands.push(h.signed);
        else plans.push(h.signed);
      }
      return { commands, plans };
    },
    start() {
      channel.attach();
      timer ??= setInterval(() => void republish(), init.republishIntervalMs ?? 15_000);
      timer.unref();
    },
    stop() {
      channel.detach();
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
