import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import { ensureStreams } from '../eventlog/index.ts';
import { connectNats } from '../runtime/nats.ts';
import { execaRunner, type Runner } from '../runtime/runner.ts';
import { nodeInboxPrefix, type AgentConfig, type ConnectionConfig, type NodeEvent } from '../schema/index.ts';
import { loadTrustedKeys, type TrustedKeys } from '../signing/index.ts';
import { createArtifactSources } from './artifact/index.ts';
import { createCommandInbox } from './command-inbox.ts';
import { assertWorkableDrivers, p2pEnabled } from './config.ts';
import { ArtifactUnavailableError, describeError } from './errors.ts';
import { readEnrolment, requestEnrolment, type EnrolmentSubject } from './enrolment.ts';
import { eventStamp, loadNodeIdentity } from './event-signer.ts';
import { nodeEvent } from './events.ts';
import { createExecutor } from './executor.ts';
import { openJournal } from './journal.ts';
import { lockDataDir } from './lock.ts';
import { startMetricsServer } from './metrics.ts';
import { createOutboxPublisher } from './outbox.ts';
import { keepEventLedger } from './event-ledger.ts';
import type { P2pLink } from './p2p-link.ts';
import { openPlanBook } from './plans.ts';
import { openTrustStore } from './trusted-keys.ts';
import { openVersionFloor } from './version-floor.ts';
import { agentPaths } from './paths.ts';
import { createCommandReboot } from './reboot/command.ts';
import type { RebootDriver } from './reboot/reboot-driver.ts';
import { createSimulateReboot } from './reboot/simulate.ts';
import { bootedImage, createSlotDriver } from './slot-drivers/index.ts';

/** The agent's own version, reported in NodeRegistered. */
export const AGENT_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** Fault injection for crash tests only: widen the windows between steps and chunk writes. */
export interface Faults {
  readonly stepDelayMs?: number;
  readonly chunkDelayMs?: number;
}

export interface AgentOptions {
  readonly config: AgentConfig;
  readonly connection: ConnectionConfig;
  readonly bootId: string;
  readonly log: Logger;
  readonly runner?: Runner;
  readonly faults?: Faults;
}

/** A running agent. */
export interface RunningAgent {
  /** The libp2p peer id, when the peer-to-peer fallback is on. */
  readonly peerId: string | undefined;
  stop(): Promise<void>;
}

async function trustedKeysOf(dir: string | undefined, log: Logger): Promise<TrustedKeys> {
  if (!dir) {
    log.error('no trusted keys directory configured; every command will be refused (set --trusted-keys)');
    return new Map();
  }
  try {
    return await loadTrustedKeys(dir);
  } catch (err) {
    // Still start: a pending upgrade must finish (or fall back) even without keys.
    log.error({ err: describeError(err) }, 'no trusted keys; every command will be refused');
    return new Map();
  }
}

/**
 * The composition root: journal, slot and reboot drivers, executor, command inbox, outbox and
 * metrics. The executor resumes the journal's operation at once, with or without NATS.
 */
export async function startAgent(o: AgentOptions): Promise<RunningAgent> {
  const { config, log } = o;
  const letOff = assertWorkableDrivers(config);
  if (letOff) log.warn({ problem: letOff }, 'lab machine: starting with drivers a real node refuses');
  const runner = o.runner ?? execaRunner;
  const paths = agentPaths(config.dataDir);
  await mkdir(paths.dataDir, { recursive: true });
  const release = await lockDataDir(paths.lock);
  // The node's identity key signs every event it emits, with the mesh on or off.
  const identity = await loadNodeIdentity(config.dataDir);
  const stamp = eventStamp(identity);
  const journal = await openJournal(paths.journal, undefined, stamp);
  if (config.eventLedger) keepEventLedger(config.eventLedger, journal);
  const driver = createSlotDriver(config, paths, runner, async () => o.bootId, o.faults, log);
  await driver.init(config.initialVersion);
  // The *.pub directory is the bootstrap trust; key commands since then live in the data dir.
  const trust = await openTrustStore({
    file: paths.trustedKeys,
    bootstrap: await trustedKeysOf(config.trustedKeysDir, log),
  });
  const trustedKeys = trust.keys;
  const floor = await openVersionFloor(paths.versionFloor);

  let nc: NatsConnection | undefined;
  // Replies come under the node's own inbox prefix: its NATS credentials allow no other.
  const connected = connectNats(o.connection.nats, `slotflow-agent-${config.nodeId}`, {
    waitOnFirstConnect: true,
    inboxPrefix: nodeInboxPrefix(config.nodeId),
  });
  const counts = { accepted: 0, rejected: 0 };
  // Installs report their offset; the counter adds up every install since the agent started.
  let bytesWritten = 0;
  let installOffset = 0;
  const onBytesWritten = (offset: number) => {
    bytesWritten += offset >= installOffset ? offset - installOffset : offset;
    installOffset = offset;
  };

  const heartbeat = async (): Promise<NodeEvent> => {
    const status = await driver.status();
    const beat = nodeEvent(config.nodeId, 'NodeHeartbeat', {
      ...bootedImage(status, config.initialVersion),
      activeSlot: status.booted,
      state: journal.data.state,
    });
    return stamp(beat, await journal.reserveEventSeq());
  };
  const who: EnrolmentSubject = { nodeId: config.nodeId, identity, trustedKeys };
  let enrolled = await readEnrolment(config.dataDir, who, log.child({ name: 'agent:enrolment' }));
  const stopping = new AbortController();
  const outbox = createOutboxPublisher({
    journal,
    log: log.child({ name: 'agent:outbox' }),
    heartbeatMs: config.heartbeatInterval,
    heartbeat,
  });

  let metrics: Server | undefined;
  let link: P2pLink | undefined;
  const beforeReboot = async () => {
    // Let the control plane see NodeRebooting now; whatever is left goes out after the boot.
    await outbox.flush(2_000);
  };
  const reboot: RebootDriver =
    config.reboot === 'simulate'
      ? createSimulateReboot(async () => {
          await beforeReboot();
          await link?.stop().catch(() => undefined);
          await nc?.close().catch(() => undefined);
          await release();
        })
      : createCommandReboot({
          runner,
          argv: config.rebootCommand,
          timeoutMs: config.rebootTimeout,
          beforeReboot,
        });

  // NATS as an artifact source only while connected and in NATS mode: a cut-off node asks its peers.
  const natsNow = async (): Promise<NatsConnection> => {
    if (nc && !nc.isClosed() && link?.mode() !== 'p2p') return nc;
    throw new ArtifactUnavailableError('NATS is not reachable now');
  };
  const plans = await openPlanBook({
    file: paths.plans,
    trustedKeys,
    log: log.child({ name: 'agent:plans' }),
  });

  const executor = createExecutor({
    nodeId: config.nodeId,
    journal,
    driver,
    reboot,
    runner,
    paths,
    config,
    bootId: o.bootId,
    get sources() {
      const configured = createArtifactSources(config.artifactSources, natsNow);
      return link ? [...configured, link.artifactSource] : configured;
    },
    log: log.child({ name: 'agent:executor' }),
    onBytesWritten,
    onImageFetched: async (manifest, path) => link?.seed(manifest, path),
    rebootTurn: async (rolloutId, signal) => (link ? link.rebootTurn(rolloutId, signal) : { type: 'free' }),
    onFinished: (op, final) => {
      if (op.kind === 'upgrade' && final?.type === 'UpgradeCommitted') {
        floor
          .raise(op.toVersion)
          .catch((err: unknown) =>
            log.error(
              { err: describeError(err) },
              'cannot raise the minimum version; it is raised at the next start',
            ),
          );
      }
      if (op.kind === 'upgrade' && link) {
        const outcome =
          final?.type === 'UpgradeCommitted'
            ? 'succeeded'
            : final?.type === 'UpgradeCommandRejected'
              ? 'skipped'
              : 'failed';
        void link.finishTurn(op.command.rolloutId, outcome);
      }
      kickPlans();
    },
    ...(o.faults?.stepDelayMs ? { stepDelayMs: o.faults.stepDelayMs } : {}),
  });

  const inbox = createCommandInbox({
    nodeId: config.nodeId,
    journal,
    driver,
    executor,
    trust,
    floor,
    maxCommandLifetimeMs: config.maxCommandLifetime,
    healthChecks: config.healthChecks.map((c) => c.name),
    initialVersion: config.initialVersion,
    log: log.child({ name: 'agent:commands' }),
    count: (outcome) => counts[outcome]++,
    onVerified: (signed) => link?.gossipCommand(signed),
    onSettled: (command, outcome) => void link?.finishTurn(command.rolloutId, outcome),
  });

  // In p2p mode the held plans stand for the commands the control plane cannot send.
  let kicking = false;
  function kickPlans(): void {
    if (!link || link.mode() !== 'p2p' || kicking) return;
    kicking = true;
    void (async () => {
      try {
        for (const signed of plans.all()) if (await inbox.handlePlan(signed)) break;
      } catch (err) {
        log.warn({ err: describeError(err) }, 'cannot act on the held plans now');
      } finally {
        kicking = false;
      }
    })();
  }

  if (p2pEnabled(config)) {
    // libp2p is most of the agent's code and memory; an agent without a mesh never loads it.
    const { createP2pLink } = await import('./p2p-link.ts');
    link = await createP2pLink({
      config,
      trustedKeys,
      journal,
      plans,
      log,
      onCommand: (signed) => void inbox.handle(JSON.stringify(signed), 'gossip').catch(() => undefined),
      onPlan: () => kickPlans(),
      onModeChange: (change) => {
        void journal
          .commit((d) => {
            d.outbox.push(
              nodeEvent(config.nodeId, 'NodeModeChanged', { mode: change.mode, reason: change.reason }),
            );
          })
          .then(kickPlans, (err: unknown) =>
            log.error({ err: describeError(err) }, 'cannot record the mode change'),
          );
      },
    });
    await link.start();
    setInterval(kickPlans, 5_000).unref();
  }

  const shutdown = async (flushMs: number) => {
    stopping.abort();
    await executor.stop();
    await outbox.flush(flushMs);
    await outbox.stop();
    await link?.stop().catch(() => undefined);
    // Closing the connection also ends the inbox's pending pull at once.
    await nc?.close().catch(() => undefined);
    await inbox.stop();
    metrics?.close();
    await release();
  };

  const status = await driver.status();
  // A committed system is the floor: this catches a raise lost to a crash right after the commit.
  if (!status.trial && journal.data.state === 'idle') {
    await floor.raise(bootedImage(status, config.initialVersion).version);
  }
  await journal.commit((d) => {
    d.outbox.push(
      nodeEvent(config.nodeId, 'NodeRegistered', {
        labels: config.labels,
        ...bootedImage(status, config.initialVersion),
        activeSlot: status.booted,
        agentVersion: AGENT_VERSION,
        ...(link ? { peerId: link.peer.peerId } : {}),
        ...(link?.peer.enrolment.own() ? { enrolment: link.peer.enrolment.own() } : {}),
        installs: [...driver.accepts],
      }),
    );
  });
  log.info(
    { state: journal.data.state, slot: status.booted, trial: status.trial, bootId: o.bootId },
    'agent started',
  );
  executor.start();

  void connected.then(
    async (conn) => {
      nc = conn;
      log.info({ server: conn.getServer() }, 'connected to NATS');
      await ensureStreams(await jetstreamManager(conn)).catch((err) => {
        // With its own NATS credentials a node may not touch streams: that is the control plane's.
        if (/permissions violation/i.test(describeError(err)))
          log.info('streams are the control plane’s to create');
        else
          log.warn({ err: describeError(err) }, 'cannot create the streams; expecting the control plane to');
      });
      inbox.start(conn);
      // Events of a node that is not enrolled would only be refused: they wait in the outbox.
      while (!enrolled && !stopping.signal.aborted) {
        try {
          enrolled = await requestEnrolment({
            nc: conn,
            who,
            labels: config.labels,
            agentVersion: AGENT_VERSION,
            dataDir: config.dataDir,
            journal,
            stamp,
            log: log.child({ name: 'agent:enrolment' }),
            signal: stopping.signal,
          });
        } catch (err) {
          log.warn({ err: describeError(err) }, 'cannot ask to be enrolled now; retrying');
          await new Promise((r) => setTimeout(r, 2_000));
        }
      }
      if (!enrolled) return;
      outbox.start(conn);
      link?.attach(conn);
    },
    (err) => log.error({ err: describeError(err) }, 'NATS connection failed'),
  );

  if (config.metricsListen) {
    let current = {
      slot: status.booted as string,
      version: bootedImage(status, config.initialVersion).version,
    };
    journal.onCommit(() => {
      void driver.status().then(
        (s) => {
          current = { slot: s.booted, version: bootedImage(s, config.initialVersion).version };
        },
        () => undefined,
      );
    });
    metrics = await startMetricsServer(config.metricsListen, () => ({
      nodeId: config.nodeId,
      state: journal.data.state,
      ...current,
      bytesWritten,
      outbox: journal.data.outbox.length,
      commands: counts,
      lastResult: journal.data.last,
      ...(link ? { p2p: link.metrics() } : {}),
    }));
    log.info({ listen: config.metricsListen }, 'metrics endpoint up');
  }

  return { peerId: link?.peer.peerId, stop: () => shutdown(2_000) };
}
