// OCI images end to end through the CLI: a rootfs and a Containerfile pushed to the stack's
// registry, rolled out by digest to real agents with file slots (each slot holds the unpacked
// image), a tag pinned at start, a second rollout of the same digest reusing the conversion, and
// a wrong digest refused before any node is told anything.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createProcessGroup, type ProcessGroup } from '../../demo/processes.ts';
import { runCli } from '../helpers/cli.ts';
import { startE2eControlPlane, waitForFleet, preauthorizeAgent } from '../helpers/e2e-stack.ts';
import {
  readFromExt4,
  removePulledImages,
  slotImages,
  writeBusyboxRootfs,
  writeContainerfile,
} from '../helpers/oci-images.ts';

let home: string;
let registry: string | undefined;
let env: Record<string, string>;
let group: ProcessGroup;
const stackDir = () => join(home, 'stack');

before(async () => {
  home = await mkdtemp(join(tmpdir(), 'slotflow-oci-e2e-'));
  env = { SLOTFLOW_HOME: home, SLOTFLOW_LOG_LEVEL: 'warn' };
  group = createProcessGroup();
});
after(async () => {
  if (registry) await removePulledImages(registry);
  await group?.stopAll();
  await runCli(['stack', 'down', '--data-dir', stackDir()], env);
  await rm(home, { recursive: true, force: true });
});

interface Pushed {
  buildId: string;
  pushed: { reference: string; digest: string };
}

async function buildAndPush(args: string[]): Promise<Pushed['pushed']> {
  const built = await runCli(['image', 'build', ...args, '--json'], env, 600_000);
  assert.equal(built.code, 0, built.stderr);
  const { buildId, pushed } = JSON.parse(built.stdout) as Pushed;
  // The push is recorded: the ImagePublished event of the build names the pinned reference.
  const published = (await rolloutEvents(buildId)).find((e) => e.type === 'ImagePublished');
  assert.deepEqual(published?.['pushed'], pushed);
  return pushed;
}

async function rollout(id: string, image: string, version: string, selector: string) {
  const args = ['rollout', 'start', '--id', id, '--image', image, '--version', version];
  args.push('--selector', selector, '--waves', '1,100%', '--max-unavailable', '2', '--wait', '--json');
  return runCli(args, env, 600_000);
}

async function rolloutEvents(id: string): Promise<{ type: string; [k: string]: unknown }[]> {
  const listed = await runCli(['events', '--rollout', id, '--json'], env);
  assert.equal(listed.code, 0, listed.stderr);
  return listed.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const parsed = JSON.parse(line) as { event?: { type: string } } & { type: string };
      return (parsed.event ?? parsed) as { type: string };
    });
}

/** The slot image an agent booted last (the one the upgrade wrote), by its boot state. */
async function bootedSlotImage(nodeId: string): Promise<string> {
  const images = await slotImages(join(home, 'agents', nodeId));
  const state = JSON.parse(await readFile(join(images[0]!, '..', 'boot-state.json'), 'utf8')) as {
    booted: string;
  };
  const image = images.find((p) => p.endsWith(`/${state.booted}.img`));
  assert.ok(image, `${nodeId} has a slot image for the slot it booted, ${state.booted}`);
  return image;
}

test('e2e oci - pushed images rolled out by digest and by tag; a wrong digest refused', async () => {
  const stack = await startE2eControlPlane(stackDir(), env, group, home);
  assert.ok(stack.registry, 'the stack runs a registry');
  registry = stack.registry.address;
  assert.equal(env['SLOTFLOW_REGISTRY'], registry);
  const nodes = ['oci-1', 'oci-2'];
  for (const [i, nodeId] of nodes.entries()) {
    const args = ['agent', '--node-id', nodeId, '--data-dir', join(home, 'agents', nodeId)];
    args.push('--labels', `site=oci,slot=${i}`, '--slot-driver', 'file', '--reboot', 'simulate');
    args.push('--trusted-keys', join(home, 'keys'), '--initial-version', '1.0.0');
    await preauthorizeAgent(env, nodeId, join(home, 'agents', nodeId));
    group.start(nodeId, args, env, join(home, `${nodeId}.log`));
  }
  await waitForFleet(env, nodes.length);

  // A rootfs pushed as a one-layer image, then a Containerfile whose RUN step builds on it.
  const rootfs = await writeBusyboxRootfs(join(home, 'base'), '3.0.0');
  const base = await buildAndPush(['--rootfs', rootfs, '--version', '3.0.0', '--push', 'test/base:3']);
  assert.match(base.reference, new RegExp(`^${registry}/test/base@sha256:[0-9a-f]{64}$`));
  const containerfile = await writeContainerfile(join(home, 'app'), base.reference, 'written by RUN');
  const app = await buildAndPush([
    '--containerfile',
    containerfile,
    '--version',
    '2.0.0',
    '--push',
    `${registry}/test/app:2.0.0`,
  ]);
  assert.equal(app.reference, `${registry}/test/app@${app.digest}`);

  // The Containerfile image by digest to both nodes: each slot holds the unpacked image.
  const first = await rollout('oci-app', app.reference, '2.0.0', 'site=oci');
  assert.equal(first.code, 0, first.stderr);
  assert.equal((JSON.parse(first.stdout) as { status: string }).status, 'succeeded');
  for (const nodeId of nodes) {
    const slot = await bootedSlotImage(nodeId);
    assert.equal(
      await readFromExt4(slot, '/etc/from-run'),
      'written by RUN',
      `${nodeId}: the RUN step's file`,
    );
    assert.equal(
      await readFromExt4(slot, '/etc/removed-later'),
      undefined,
      `${nodeId}: the whiteout applied`,
    );
  }
  const converted = (await rolloutEvents('oci-app')).find((e) => e.type === 'ImageConverted');
  assert.equal(converted?.['ociDigest'], app.digest);
  assert.equal(converted?.['reference'], app.reference);

  // The pushed rootfs by its tag only: pinned at start to the digest the push printed.
  const byTag = await rollout('oci-tag', 'test/base:3', '3.0.0', 'site=oci,slot=0');
  assert.equal(byTag.code, 0, byTag.stderr);
  const tagEvents = await rolloutEvents('oci-tag');
  const pinned = tagEvents.find((e) => e.type === 'ImageConverted');
  assert.equal(pinned?.['ociDigest'], base.digest, 'the tag was pinned to the pushed digest');
  assert.equal(pinned?.['reference'], base.reference);
  const slot = await bootedSlotImage('oci-1');
  assert.match((await readFromExt4(slot, '/etc/os-release')) ?? '', /VERSION_ID=3.0.0/);
  assert.equal(await readFromExt4(slot, '/etc/removed-later'), 'the Containerfile removes this file');

  // The same digest again: the conversion recorded above is reused, not repeated.
  const again = await rollout('oci-again', base.reference, '3.0.0', 'site=oci,slot=1');
  assert.equal(again.code, 0, again.stderr);
  const againEvents = await rolloutEvents('oci-again');
  assert.equal(againEvents.filter((e) => e.type === 'ImageConverted').length, 0, 'not converted twice');
  const reused = againEvents.find((e) => e.type === 'ImagePublished');
  assert.equal(reused?.['digest'], pinned?.['digest'], 'the slot image converted for oci-tag');
  const other = await bootedSlotImage('oci-2');
  assert.equal(await readFromExt4(other, '/etc/removed-later'), 'the Containerfile removes this file');

  // A digest the registry does not have: refused with the reason, no node commanded or written.
  const before = await Promise.all(nodes.map(async (n) => (await readFile(await bootedSlotImage(n))).length));
  const wrong = `${registry}/test/app@sha256:${'0'.repeat(64)}`;
  const refused = await rollout('oci-wrong', wrong, '4.0.0', 'site=oci');
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(
    refused.stdout + refused.stderr,
    /has no manifest with digest sha256:0{64} in test\/app.*nothing was written/,
  );
  const wrongEvents = await rolloutEvents('oci-wrong');
  assert.deepEqual(
    wrongEvents.map((e) => e.type),
    ['RolloutStarted', 'RolloutCompleted'],
    'no image, no targets, no commands',
  );
  const fleet = JSON.parse((await runCli(['fleet', '--json'], env)).stdout) as {
    nodes: { nodeId: string; version: string }[];
  };
  assert.deepEqual(
    fleet.nodes.map((n) => n.version),
    ['3.0.0', '3.0.0'],
  );
  const after = await Promise.all(nodes.map(async (n) => (await readFile(await bootedSlotImage(n))).length));
  assert.deepEqual(after, before);
});
