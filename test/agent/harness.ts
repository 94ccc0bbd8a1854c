// A fleet for agent tests: a real nats-server, the control plane's key, images in the object
// store, signed commands, and real `bin/slotflow agent` processes with their event streams.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { manifestOf } from '../../activities/builders/manifest.ts';
import { openEventLog, type EventLog } from '../../eventlog/index.ts';
import {
  IMAGES_BUCKET,
  commandSubject,
  type ArtifactManifest,
  type CommandInput,
  type SignedCommand,
} from '../../schema/index.ts';
import {
  initKeys,
  keysDir,
  loadSigningKey,
  newNonce,
  signCommand,
  type SigningKey,
} from '../../signing/index.ts';
import { parseJournal } from '../../node-agent/journal.ts';
import type { JournalData } from '../../node-agent/journal-data.ts';
import { preauthorize } from '../helpers/enrol.ts';
import { startNats, type NatsHandle } from '../helpers/servers.ts';
import { AgentProcess } from './agent-process.ts';
import { EventWatch } from './event-watch.ts';

/** Deterministic bytes (mulberry32), so a failing seed can be replayed. */
export function seededBytes(seed: number, size: number): Buffer {
  let a = seed >>> 0;
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (t ^ (t >>> 14)) & 0xff;
  }
  return out;
}

/** A small seeded random number generator for test decisions. */
export { seededRandom as rng } from '../../lab/power-cut.ts';

/** An image on disk with its manifest. */
export interface TestImage {
  readonly manifest: ArtifactManifest;
  readonly path: string;
  readonly bytes: Buffer;
}

/** How to start one agent. */
export interface AgentSpec {
  readonly nodeId: string;
  /** Extra `slotflow agent` flags. */
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Written as the agent's --config file. */
  readonly config?: Record<string, unknown>;
  /** Pre-authorise the node before it starts (default true); false starts it unenrolled. */
  readonly enrol?: boolean;
  /** Runs before every power-on (the first start too), with the machine off. */
  readonly beforePowerOn?: (dataDir: string) => Promise<void>;
}

/** One agent machine under test. */
export class TestAgent {
  proc: AgentProcess;
  readonly nodeId: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly events: EventWatch;
  readonly #args: readonly string[];
  readonly #env: NodeJS.ProcessEnv;
  readonly #beforePowerOn: ((dataDir: string) => Promise<void>) | undefined;

  constructor(init: {
    proc: AgentProcess;
    nodeId: string;
    dataDir: string;
    logFile: string;
    events: EventWatch;
    args: readonly string[];
    env: NodeJS.ProcessEnv;
    beforePowerOn?: ((dataDir: string) => Promise<void>) | undefined;
  }) {
    this.proc = init.proc;
    this.nodeId = init.nodeId;
    this.dataDir = init.dataDir;
    this.logFile = init.logFile;
    this.events = init.events;
    this.#args = init.args;
    this.#env = init.env;
    this.#beforePowerOn = init.beforePowerOn;
  }

  /** Power on again after powerOff(). */
  async powerOn(): Promise<void> {
    await this.#beforePowerOn?.(this.dataDir);
    this.proc = await AgentProcess.start(this.#args, this.#env, this.logFile);
  }

  /** Pulls the plug and plugs it in again. */
  async powerCycle(): Promise<void> {
    await this.proc.powerOff();
    await this.powerOn();
  }

  async journal(): Promise<JournalData> {
    const file = join(this.dataDir, 'journal.json');
    return parseJournal(await readFile(file, 'utf8'), file);
  }

  async json(...path: string[]): Promise<Record<string, unknown> | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dataDir, ...path), 'utf8')) as Record<string, unknown>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** The last lines of the agent's log, for failure messages. */
  async logTail(lines = 30): Promise<string> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '');
    return text.split('\n').slice(-lines).join('\n');
  }
}

/** The test's control plane and its agents. */
export class Fleet {
  readonly nats: NatsHandle;
  readonly nc: NatsConnection;
  readonly log: EventLog;
  readonly key: SigningKey;
  readonly root: string;
  readonly images: ObjectStore;
  readonly agents: TestAgent[] = [];

  constructor(init: {
    nats: NatsHandle;
    nc: NatsConnection;
    log: EventLog;
    key: SigningKey;
    root: string;
    images: ObjectStore;
  }) {
    this.nats = init.nats;
    this.nc = init.nc;
    this.log = init.log;
    this.key = init.key;
    this.root = init.root;
    this.images = init.images;
  }

  get home(): string {
    return join(this.root, 'home');
  }

  /** Starts an agent; its events are collected from the moment before it starts. */
  async addAgent(spec: AgentSpec): Promise<TestAgent> {
    const dataDir = join(this.root, 'nodes', spec.nodeId);
    await mkdir(dataDir, { recursive: true });
    if (spec.enrol !== false) await preauthorize(this.nc, this.log, this.home, spec.nodeId, dataDir);
    const args = [
      '--node-id',
      spec.nodeId,
      '--data-dir',
      dataDir,
      '--trusted-keys',
      keysDir(this.home),
      '--heartbeat-interval',
      '2s',
      ...(spec.args ?? []),
    ];
    if (spec.config) {
      const file = join(this.root, `${spec.nodeId}.config.json`);
      await writeFile(file, JSON.stringify(spec.config));
      args.push('--config', file);
    }
    const env = {
      ...process.env,
      NATS_URL: this.nats.url,
      SLOTFLOW_HOME: this.home,
      // Agents start often (every simulated boot); cached compilation keeps that cheap.
      NODE_COMPILE_CACHE: join(this.root, 'compile-cache'),
      ...spec.env,
    };
    const logFile = join(this.root, `${spec.nodeId}.log`);
    const events = new EventWatch(this.log, spec.nodeId);
    await spec.beforePowerOn?.(dataDir);
    const proc = await AgentProcess.start(args, env, logFile);
    const agent = new TestAgent({
      proc,
      nodeId: spec.nodeId,
      dataDir,
      logFile,
      events,
      args,
      env,
      beforePowerOn: spec.beforePowerOn,
    });
    this.agents.push(agent);
    return agent;
  }

  /** Writes a seeded image file and returns it with its manifest (not published). */
  async image(
    version: string,
    { size = 96 * 1024, chunkSize = 16 * 1024, seed = 1 } = {},
  ): Promise<TestImage> {
    const bytes = seededBytes(seed, size);
    const dir = join(this.root, 'images');
    await mkdir(dir, { recursive: true });
    const path = join(dir, `${version}-${seed}.img`);
    await writeFile(path, bytes);
    const manifest = await manifestOf(path, { format: 'raw', version }, chunkSize);
    return { manifest, path, bytes };
  }

  /** Puts an image into the object store under its digest (or other bytes under that name). */
  async publish(image: TestImage, bytes: Uint8Array = image.bytes): Promise<void> {
    await this.images.putBlob({ name: image.manifest.digest }, bytes);
  }

  /** A signed command with fresh nonce and times (overrides win). */
  sign(input: Partial<CommandInput> & Pick<CommandInput, 'type' | 'nodeId'>, key = this.key): SignedCommand {
    const now = Date.now();
    return signCommand(
      {
        v: 1,
        commandId: `r-${now}:${input.nodeId}:${input.type.toLowerCase()}`,
        rolloutId: 'r-test',
        nonce: newNonce(),
        issuedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + 10 * 60_000).toISOString(),
        ...input,
      } as CommandInput,
      key,
    );
  }

  /** Publishes a command (or any text) to the node's command subject. */
  async send(nodeId: string, message: SignedCommand | string, msgId?: string): Promise<void> {
    const data = typeof message === 'string' ? message : JSON.stringify(message);
    const id = msgId ?? (typeof message === 'string' ? undefined : message.command.commandId);
    await this.log.js.publish(commandSubject(nodeId), data, id ? { msgID: id } : {});
  }

  /** Signs and sends an upgrade; returns its command id. */
  async upgrade(
    nodeId: string,
    manifest: ArtifactManifest,
    opts: { rolloutId?: string; allowDowngrade?: boolean; healthChecks?: string[] } = {},
  ): Promise<string> {
    const rolloutId = opts.rolloutId ?? `r-${manifest.version.replace(/[^A-Za-z0-9_-]/g, '-')}`;
    const signed = this.sign({
      type: 'Upgrade',
      nodeId,
      rolloutId,
      commandId: `${rolloutId}:${nodeId}:upgrade`,
      image: { type: 'artifact', manifest },
      manifestDigest: manifest.digest,
      allowDowngrade: opts.allowDowngrade ?? false,
      healthChecks: opts.healthChecks ?? [],
    });
    await this.send(nodeId, signed);
    return signed.command.commandId;
  }

  /**
   * Signs and sends a rollback; returns its command id. Like a rollout's rollback it carries the
   * signed allowance to go below the node's minimum version, unless `allowDowngrade` is false.
   */
  async rollback(
    nodeId: string,
    rolloutId: string,
    toVersion?: string,
    { allowDowngrade = true }: { allowDowngrade?: boolean } = {},
  ): Promise<string> {
    const signed = this.sign({
      type: 'Rollback',
      nodeId,
      rolloutId,
      commandId: `${rolloutId}:${nodeId}:rollback`,
      ...(toVersion ? { toVersion } : {}),
      allowDowngrade,
    });
    await this.send(nodeId, signed);
    return signed.command.commandId;
  }

  async stop(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.proc.stop(5_000).catch(() => a.proc.powerOff())));
    await Promise.all(this.agents.map((a) => a.events.stop()));
    await this.nats.stop();
    await rm(this.root, { recursive: true, force: true });
  }
}

/** Starts nats-server, creates the control plane's key and the images bucket. */
export async function startFleet(): Promise<Fleet> {
  const root = await mkdtemp(join(tmpdir(), 'slotflow-agents-'));
  const nats = await startNats();
  const nc = await nats.connect();
  const log = await openEventLog(nc);
  await initKeys(join(root, 'home'));
  const key = await loadSigningKey(join(root, 'home'));
  const images = await new Objm(nc).create(IMAGES_BUCKET);
  return new Fleet({ nats, nc, log, key, root, images });
}
