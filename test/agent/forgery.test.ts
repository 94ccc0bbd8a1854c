// The forgery campaign: many generated hostile commands, of every kind, sent over real NATS to
// real agents (file slot driver). Every one must be refused with the reason that fits it, and
// nothing may be written to the slots, the staging area, the version floor, the trusted keys or
// the journal beyond the refusal. Between them go properly signed downgrades (allowDowngrade:
// true, below the node's minimum version), which must really install and commit.
//
// agent-commands.test.ts pins each refusal once with its message; this file draws many cases
// (seeded: SLOTFLOW_FORGERY_SEED replays a campaign, printed at the start) and counts them. The
// suite runs a sample; `npm run soak -- forgery --trials N [--seed S]` runs N cases and writes
// the JSON report to SLOTFLOW_FORGERY_REPORT.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ArtifactManifest, NodeEvent, RejectReason, SignedCommand } from '../../schema/index.ts';
import { initKeys, loadSigningKey, newNonce, type SigningKey } from '../../signing/index.ts';
import { rng, startFleet, type Fleet, type TestAgent, type TestImage } from './harness.ts';
import { scratchDir } from './scratch.ts';
import { wholeNumberEnv } from '../faults/campaign.ts';

const SEED = wholeNumberEnv('SLOTFLOW_FORGERY_SEED', Math.floor(Math.random() * 2 ** 31));
const CASES = wholeNumberEnv('SLOTFLOW_FORGERY_CASES', 42);
const REPORT = process.env['SLOTFLOW_FORGERY_REPORT'];
const AGENTS = 3;
const MINUTE = 60_000;

/** The kinds of case, each with the reason its refusal must name ('commit': must be carried out). */
const KINDS = {
  /** Signed by a key the node does not trust. */
  'unknown-key': 'unknown-key',
  /** A valid signature over a command changed after signing (any field). */
  'tampered-field': 'bad-signature',
  /** allowDowngrade: true slipped into a signed downgrade. */
  'unsigned-allow-downgrade': 'bad-signature',
  /** A valid command whose signature has one bit flipped. */
  'tampered-signature': 'bad-signature',
  expired: 'expired',
  'not-yet-valid': 'not-yet-valid',
  /** Valid longer than the node accepts. */
  'expiry-too-far': 'expiry-too-far',
  /** A nonce the node used before, in another command. */
  replayed: 'replayed',
  /** Signed for another node, delivered to this one. */
  'wrong-node': 'wrong-node',
  /** Older than the running version, no allowance. */
  'downgrade-below-running': 'downgrade',
  /** Newer than the running version but older than the node's minimum (the newest it committed). */
  'downgrade-below-floor': 'downgrade',
  /** A properly signed command whose image bytes in the object store were tampered with. */
  'tampered-chunks': 'artifact-invalid',
  /** The manifest digest the command signs does not match its image. */
  'digest-mismatch': 'artifact-invalid',
  /** A properly signed downgrade below the floor with allowDowngrade: true: must commit. */
  'allowed-downgrade': 'commit',
} as const satisfies Record<string, RejectReason | 'commit'>;
type Kind = keyof typeof KINDS;

interface Case {
  readonly node: string;
  readonly kind: Kind;
  readonly expected: RejectReason | 'commit';
  detail?: string;
  got?: string;
  message?: string;
  /** What changed that must not have. */
  written?: string[];
  ok?: boolean;
}

/** What the node's disk holds, for "nothing was written". */
async function diskState(agent: TestAgent): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const hash = async (file: string) =>
    createHash('sha256')
      .update(await readFile(file).catch(() => Buffer.from('<none>')))
      .digest('hex');
  for (const name of await readdir(join(agent.dataDir, 'slots'))) {
    out[`slots/${name}`] = await hash(join(agent.dataDir, 'slots', name));
  }
  for (const name of await readdir(join(agent.dataDir, 'staging')).catch(() => [])) {
    out[`staging/${name}`] = await hash(join(agent.dataDir, 'staging', name));
  }
  for (const name of ['version-floor.json', 'trusted-keys.json', 'plans.json']) {
    out[name] = await hash(join(agent.dataDir, name));
  }
  return out;
}

function changed(before: Record<string, string>, after: Record<string, string>): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...names].filter((n) => before[n] !== after[n]).sort();
}

let fleet: Fleet;
let stranger: SigningKey;
const cases: Case[] = [];

before(async () => {
  console.log(`forgery campaign: seed ${SEED}, ${CASES} cases (replay: SLOTFLOW_FORGERY_SEED=${SEED})`);
  fleet = await startFleet();
  const home = await scratchDir('slotflow-forger-');
  await initKeys(home);
  stranger = await loadSigningKey(home);
});
after(async () => {
  await fleet?.stop();
});

/** One node's campaign: sequential, so each refusal is the next one the node reports. */
async function runNode(agent: TestAgent, index: number, count: number): Promise<void> {
  const random = rng(SEED * 17 + index);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const shuffled = <T>(items: readonly T[]): T[] => {
    const out = [...items];
    for (let k = out.length - 1; k > 0; k--) {
      const j = int(0, k);
      [out[k], out[j]] = [out[j]!, out[k]!];
    }
    return out;
  };
  const deck: Kind[] = [];
  let imageSeed = SEED + index * 100_000;
  const image = async (version: string): Promise<TestImage> => {
    const made = await fleet.image(version, { seed: imageSeed++, size: 32 * 1024, chunkSize: 8 * 1024 });
    await fleet.publish(made);
    return made;
  };
  const node = agent.nodeId;
  const upgradeInput = (manifest: ArtifactManifest, extra: Record<string, unknown> = {}) => ({
    type: 'Upgrade' as const,
    nodeId: node,
    commandId: `r-f${index}-${cases.length}-${newNonce().slice(0, 8)}:${node}:upgrade`,
    rolloutId: `r-f${index}`,
    image: { type: 'artifact' as const, manifest },
    manifestDigest: manifest.digest,
    allowDowngrade: false,
    healthChecks: [],
    ...extra,
  });
  // Nonces of commands the node verified; they stay claimed while those commands are valid (2 h).
  const usedNonces: string[] = [];
  const longLived = () => ({ expiresAt: new Date(Date.now() + 100 * MINUTE).toISOString() });

  // Start: commit 6.0.0, so the floor is 6.0.0 and the running version is too.
  let running = '6.0.0';
  const floor = '6.0.0';
  {
    const first = await image(running);
    const signed = fleet.sign(upgradeInput(first.manifest, longLived()));
    usedNonces.push(signed.command.nonce);
    await fleet.send(node, signed);
    const outcome = await agent.events.outcome(signed.command.commandId, 60_000);
    assert.equal(outcome.type, 'UpgradeCommitted', `${node}: the first upgrade commits`);
    // The floor is raised just after the commit is reported; the cases start from a settled disk.
    const deadline = Date.now() + 30_000;
    while ((await agent.json('version-floor.json'))?.['version'] !== floor) {
      assert.ok(Date.now() < deadline, `${node}: the minimum version becomes ${floor} after the commit`);
      await sleep(50);
    }
  }

  const rejections = () =>
    agent.events.events
      .map((e) => e.event as NodeEvent)
      .filter(
        (e): e is Extract<NodeEvent, { type: 'UpgradeCommandRejected' }> =>
          e.type === 'UpgradeCommandRejected',
      );

  for (let i = 0; i < count; i++) {
    // Kinds are dealt from shuffled decks, so a run of at least one deck per node covers every
    // kind. The floor-only downgrade needs a node running below its floor, which an allowed
    // downgrade brings about: in a deck dealt before that, it comes after one.
    if (deck.length === 0) {
      const next = shuffled(Object.keys(KINDS) as Kind[]);
      const allowed = next.indexOf('allowed-downgrade');
      const below = next.indexOf('downgrade-below-floor');
      if (running === floor && below < allowed) [next[allowed], next[below]] = [next[below]!, next[allowed]!];
      deck.push(...next);
    }
    const kind = deck.shift()!;
    const c: Case = { node, kind, expected: KINDS[kind] };
    cases.push(c);
    const newer = `7.${int(0, 99)}.${int(0, 99)}`;
    const older = (below: string) => {
      const [major, minor] = below.split('.').map(Number) as [number, number];
      return minor > 0 ? `${major}.${int(0, minor - 1)}.${int(0, 99)}` : `${major - 1}.${int(0, 99)}.0`;
    };
    let message: SignedCommand;
    switch (kind) {
      case 'unknown-key':
        message = fleet.sign(upgradeInput((await image(newer)).manifest), stranger);
        break;
      case 'tampered-field': {
        const field = pick([
          'nodeId',
          'rolloutId',
          'commandId',
          'manifestDigest',
          'version',
          'expiresAt',
          'issuedAt',
          'nonce',
          'healthChecks',
        ] as const);
        c.detail = field;
        // nodeId: another node's command, re-addressed to this one.
        const target = field === 'nodeId' ? 'forge-other' : node;
        const signed = fleet.sign({ ...upgradeInput((await image(newer)).manifest), nodeId: target });
        const cmd = structuredClone(signed.command) as Record<string, unknown> & typeof signed.command;
        if (field === 'version' && cmd.type === 'Upgrade' && cmd.image.type === 'artifact')
          cmd.image.manifest = { ...cmd.image.manifest, version: '9.9.9' };
        else if (field === 'healthChecks') cmd[field] = ['app'];
        else if (field === 'expiresAt')
          cmd[field] = new Date(Date.parse(String(cmd[field])) + MINUTE).toISOString();
        else if (field === 'issuedAt')
          cmd[field] = new Date(Date.parse(String(cmd[field])) - MINUTE).toISOString();
        else if (field === 'manifestDigest') cmd[field] = `sha256:${'0'.repeat(64)}`;
        else if (field === 'nodeId') cmd[field] = node;
        else cmd[field] = `${String(cmd[field])}x`;
        message = { ...signed, command: cmd };
        break;
      }
      case 'unsigned-allow-downgrade': {
        const signed = fleet.sign(upgradeInput((await image(older(running))).manifest));
        message = {
          ...signed,
          command: { ...signed.command, allowDowngrade: true } as typeof signed.command,
        };
        break;
      }
      case 'tampered-signature': {
        const signed = fleet.sign(upgradeInput((await image(newer)).manifest));
        const sig = Buffer.from(signed.signature, 'base64');
        const bit = int(0, sig.length * 8 - 1);
        sig[bit >> 3] = sig[bit >> 3]! ^ (1 << (bit & 7));
        c.detail = `bit ${bit}`;
        message = { ...signed, signature: sig.toString('base64') };
        break;
      }
      case 'expired': {
        const ago = int(11, 600) * MINUTE;
        c.detail = `expired ${ago / MINUTE} min ago`;
        message = fleet.sign(
          upgradeInput((await image(newer)).manifest, {
            issuedAt: new Date(Date.now() - ago - 30 * MINUTE).toISOString(),
            expiresAt: new Date(Date.now() - ago).toISOString(),
          }),
        );
        break;
      }
      case 'not-yet-valid': {
        const ahead = int(11, 60) * MINUTE;
        c.detail = `issued ${ahead / MINUTE} min ahead`;
        message = fleet.sign(
          upgradeInput((await image(newer)).manifest, {
            issuedAt: new Date(Date.now() + ahead).toISOString(),
            expiresAt: new Date(Date.now() + ahead + 30 * MINUTE).toISOString(),
          }),
        );
        break;
      }
      case 'expiry-too-far': {
        const hours = int(3, 24 * 30);
        c.detail = `valid ${hours} h`;
        message = fleet.sign(
          upgradeInput((await image(newer)).manifest, {
            expiresAt: new Date(Date.now() + hours * 60 * MINUTE).toISOString(),
          }),
        );
        break;
      }
      case 'replayed':
        message = fleet.sign(upgradeInput((await image(newer)).manifest, { nonce: pick(usedNonces) }));
        break;
      case 'wrong-node':
        message = fleet.sign({
          ...upgradeInput((await image(newer)).manifest),
          nodeId: `forge-${int(10, 99)}`,
        });
        break;
      case 'downgrade-below-running': {
        const version = older(running);
        c.detail = `${version} < running ${running}`;
        message = fleet.sign(upgradeInput((await image(version)).manifest, longLived()));
        usedNonces.push(message.command.nonce);
        break;
      }
      case 'downgrade-below-floor': {
        // Between the running version and the floor.
        const [, minor] = running.split('.').map(Number) as [number, number];
        const version = `5.${int(minor + 1, 99)}.${int(0, 99)}`;
        c.detail = `running ${running} < ${version} < floor ${floor}`;
        message = fleet.sign(upgradeInput((await image(version)).manifest, longLived()));
        usedNonces.push(message.command.nonce);
        break;
      }
      case 'tampered-chunks': {
        const made = await fleet.image(newer, { seed: imageSeed++, size: 32 * 1024, chunkSize: 8 * 1024 });
        const bytes = Buffer.from(made.bytes);
        const at = int(0, bytes.length - 1);
        bytes[at] = bytes[at]! ^ (1 << int(0, 7));
        c.detail = `byte ${at} (chunk ${at >> 13})`;
        await fleet.publish(made, bytes);
        message = fleet.sign(upgradeInput(made.manifest, longLived()));
        usedNonces.push(message.command.nonce);
        break;
      }
      case 'digest-mismatch': {
        const made = await image(newer);
        const other = await image(newer === '7.0.0' ? '7.0.1' : '7.0.0');
        message = fleet.sign(
          upgradeInput(made.manifest, { manifestDigest: other.manifest.digest, ...longLived() }),
        );
        usedNonces.push(message.command.nonce);
        break;
      }
      case 'allowed-downgrade': {
        // Below the floor, and not what the node runs.
        let version = `5.${int(0, 49)}.${int(0, 99)}`;
        if (version === running) version = `5.50.${int(0, 99)}`;
        c.detail = `${running} -> ${version} (floor ${floor})`;
        message = fleet.sign(
          upgradeInput((await image(version)).manifest, { allowDowngrade: true, ...longLived() }),
        );
        usedNonces.push(message.command.nonce);
        const commandId = message.command.commandId;
        await fleet.send(node, message);
        const outcome = await agent.events.outcome(commandId, 60_000);
        c.got = outcome.type;
        const boot = await agent.json('slots', 'boot-state.json');
        const meta = await agent.json('slots', `${String(boot?.['active'])}.json`);
        c.ok = outcome.type === 'UpgradeCommitted' && meta?.['version'] === version;
        if (c.ok) running = version;
        else c.message = `${JSON.stringify(outcome)}; slot metadata ${JSON.stringify(meta)}`;
        continue;
      }
    }
    // Its own message id: JetStream must not fold a case into an earlier one.
    const msgId = `forge-${SEED}-${index}-${i}`;
    const disk = await diskState(agent);
    const journal = await agent.journal();
    const handledBefore = new Set(journal.handled.map((h) => h.commandId));
    const seenBefore = agent.events.events.length;
    const refusedBefore = rejections().length;
    await fleet.send(node, message, msgId);
    const refusal = await agent.events.waitFor('the refusal', () => rejections()[refusedBefore], 30_000);
    c.got = refusal.reason;
    c.message = refusal.message;
    // The refusal is on disk (the outbox published it): now nothing else may have changed.
    const after = await agent.journal();
    const written = changed(disk, await diskState(agent));
    if (after.state !== 'idle' || after.op !== null) written.push(`journal state ${after.state}`);
    for (const h of after.handled) {
      if (!handledBefore.has(h.commandId) && h.final.type !== 'UpgradeCommandRejected')
        written.push(`journal handled ${h.commandId} as ${h.final.type}`);
    }
    const allowedTypes = new Set(['UpgradeCommandRejected', 'NodeHeartbeat']);
    // An image is verified while it downloads, after the command was accepted.
    if (kind === 'tampered-chunks') allowedTypes.add('UpgradeCommandAccepted');
    for (const e of agent.events.events.slice(seenBefore)) {
      if (!allowedTypes.has(e.event.type)) written.push(`event ${e.event.type}`);
    }
    c.written = written;
    c.ok = c.got === c.expected && written.length === 0 && refusal.message.length > 0;
  }
}

test(
  'forgery campaign - forged, tampered, expired, replayed, wrong-node and downgrade commands and tampered images are all refused with their reason and write nothing; a signed allowDowngrade installs',
  { timeout: Math.max(600_000, CASES * 5_000) },
  async () => {
    const agents = await Promise.all(
      Array.from({ length: AGENTS }, (_, k) =>
        fleet.addAgent({
          nodeId: `forge-${k}`,
          args: ['--initial-version', '5.0.0', '--max-command-lifetime', '2h'],
          config: { healthChecks: [{ name: 'app', command: ['true'], timeout: '5s' }] },
        }),
      ),
    );
    await Promise.all(
      agents.map((a) =>
        // Several agents start at once, each compiling its code: on a loaded two-core host that
        // takes longer than one agent's start.
        a.events.waitFor(
          'NodeRegistered',
          (ev) => ev.some((e) => e.event.type === 'NodeRegistered'),
          120_000,
        ),
      ),
    );
    const started = Date.now();
    const share = (k: number) => Math.floor(CASES / AGENTS) + (k < CASES % AGENTS ? 1 : 0);
    const run = Promise.all(agents.map((a, k) => runNode(a, k, share(k))));
    let failure: unknown;
    await run.catch((err: unknown) => {
      failure = err;
    });
    const summary = await report(Date.now() - started);
    console.log(`forgery cases: ${JSON.stringify(summary)}`);
    if (failure) throw failure;
    const bad = cases.filter((c) => !c.ok);
    assert.deepEqual(bad, [], `every case ends as it must (seed ${SEED})`);
    assert.equal(cases.length, CASES);
    if (CASES >= AGENTS * Object.keys(KINDS).length)
      assert.deepEqual(Object.keys(summary.perKind).sort(), Object.keys(KINDS).sort(), 'every kind ran');
  },
);

async function report(elapsedMs: number) {
  const perKind: Record<string, { cases: number; ok: number; reasons: Record<string, number> }> = {};
  for (const c of cases) {
    const k = (perKind[c.kind] ??= { cases: 0, ok: 0, reasons: {} });
    k.cases += 1;
    if (c.ok) k.ok += 1;
    k.reasons[c.got ?? 'none'] = (k.reasons[c.got ?? 'none'] ?? 0) + 1;
  }
  const refusals = cases.filter((c) => c.expected !== 'commit');
  const summary = {
    seed: SEED,
    cases: cases.length,
    elapsedS: Math.round(elapsedMs / 1000),
    hostile: refusals.length,
    refusedWithTheRightReason: refusals.filter((c) => c.got === c.expected).length,
    wroteSomething: refusals.filter((c) => (c.written?.length ?? 0) > 0).length,
    allowedDowngrades: cases.filter((c) => c.kind === 'allowed-downgrade').length,
    allowedDowngradesCommitted: cases.filter((c) => c.kind === 'allowed-downgrade' && c.ok).length,
    perKind,
  };
  if (REPORT) {
    await mkdir(join(REPORT, '..'), { recursive: true });
    await writeFile(REPORT, `${JSON.stringify({ summary, cases }, null, 2)}\n`);
    console.log(`forgery report: ${REPORT}`);
  }
  return summary;
}
