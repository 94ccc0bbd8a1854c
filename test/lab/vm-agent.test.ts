// The slotflow agent inside a lab VM: the slot image carries Node.js and the agent, the guest's
// init starts `slotflow agent --reboot command`, and the agent reaches the test's nats-server
// through QEMU's user-mode network (guest 10.0.2.100:4222 forwarded to the host's port).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Msg } from '@nats-io/nats-core';
import { ensureStreams } from '../../eventlog/index.ts';
import { agentBundle } from '../../lab/agent-bundle.ts';
import { TRIES_RESET } from '../../lab/console.ts';
import { buildLabDisk, cloneDisk, startVm, type LabVm } from '../../lab/index.ts';
import { openEnrolmentBucket } from '../../trust/index.ts';
import { labMissing } from './lab-missing.ts';
import { startNats, type NatsHandle } from '../helpers/servers.ts';

const NODE_ID = 'lab-1';

describe('vm lab - the agent in a VM', async () => {
  const missing = await labMissing();
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-vm-agent-'));
  let nats: NatsHandle | undefined;
  let vm: LabVm | undefined;
  after(async () => {
    await vm?.stop();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test(
    'the agent boots with its slot, survives a power cut right after it starts, and asks to be enrolled through the forwarded NATS address',
    { skip: missing, timeout: 720_000 },
    async () => {
      nats = await startNats();
      const nc = await nats.connect();
      await ensureStreams(await jetstreamManager(nc));
      // What the worker makes at start: the bucket a waiting agent watches for its certificate.
      await openEnrolmentBucket(nc);
      const registered = new Promise<Msg>((resolve) => {
        // A VM makes its key on first boot: its first word is a signed request to be enrolled.
        const sub = nc.subscribe(`slotflow.evt.node.${NODE_ID}.NodeEnrollmentRequested`, { max: 1 });
        void (async () => {
          for await (const msg of sub) resolve(msg);
        })();
      });

      const disk = await buildLabDisk({ agent: await agentBundle() });
      process.stderr.write(
        `lab disk ${disk.cached ? 'from the cache' : 'built'} in ${disk.seconds.toFixed(1)} s\n`,
      );
      const image = join(dir, 'disk.img');
      await cloneDisk(disk, image, {
        'lab/lab.env': `LAB_SERVICE=agent\nSLOTFLOW_NODE_ID=${NODE_ID}\nNATS_URL=nats://10.0.2.100:4222\n`,
      });
      const started = Date.now();
      vm = await startVm({
        name: 'vm-agent',
        disk: image,
        dir: join(dir, 'vm'),
        guestForwards: [{ guestPort: 4222, hostPort: nats.port }],
      });
      // Under TCG on a loaded 2-core host (other VMs booting beside it) a first boot can take minutes.
      const booted = await vm.waitFor(/slotflow-lab: booted slot A/, { timeoutMs: 300_000 });
      const bootSeconds = (Date.now() - started) / 1000;
      // GRUB used slot A's try for this boot; the agent gives it back at start. A power cut just
      // after must not undo that, or the next boot finds no slot that may boot.
      await vm.waitFor(/"msg":"confirmed the boot of the committed slot"/, {
        offset: booted.offset,
        timeoutMs: 240_000,
      });
      await vm.powerCut();
      const offset = (await vm.console()).length;
      await vm.powerOn();
      const rebooted = await vm.waitFor(/slotflow-lab: booted slot (\w+)/, { offset, timeoutMs: 300_000 });
      assert.equal(rebooted.match[1], 'A');
      assert.ok(
        !(await vm.console()).slice(offset).includes(TRIES_RESET),
        'GRUB found slot A with its try after the power cut',
      );
      await vm.waitFor(/"msg":"connected to NATS"/, { offset: rebooted.offset, timeoutMs: 240_000 });
      let timer: NodeJS.Timeout | undefined;
      const msg = await Promise.race([
        registered,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error('no NodeEnrollmentRequested within 60 s of connecting')),
            60_000,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      const event = msg.json<{ nodeId: string; publicKey?: string; labels?: Record<string, string> }>();
      assert.equal(event.nodeId, NODE_ID);
      assert.equal(event.labels?.['site'], 'lab');
      assert.equal(Buffer.from(event.publicKey ?? '', 'base64').length, 32, 'it presents its ed25519 key');
      process.stderr.write(
        `booted in ${bootSeconds.toFixed(1)} s, agent asked to be enrolled ${((Date.now() - started) / 1000).toFixed(1)} s after power-on\n`,
      );
    },
  );
});
