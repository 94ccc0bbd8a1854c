import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { searchAttributes } from '../../stack/index.ts';
import { isAlive } from '../../stack/pids.ts';
import { startScriptProcess } from '../helpers/script-process.ts';
import { startStack, type StackHandle } from '../helpers/servers.ts';

const encoder = new TextEncoder();

describe('stack harness', () => {
  let stack: StackHandle;
  before(async () => {
    stack = await startStack();
  });
  after(() => stack?.stop());

  test('stack harness - Temporal answers with the four slotflow search attributes', async () => {
    const connection = await stack.temporal.connection();
    const described = await connection.workflowService.describeNamespace({
      namespace: stack.temporal.namespace,
    });
    assert.equal(described.namespaceInfo?.name, stack.temporal.namespace);
    const listed = await connection.operatorService.listSearchAttributes({
      namespace: stack.temporal.namespace,
    });
    const custom = listed.customAttributes ?? {};
    // The proto enum's numeric values: KEYWORD = 2, INT = 3.
    const expected = { Keyword: 2, Int: 3 } as const;
    for (const [name, type] of Object.entries(searchAttributes)) {
      assert.equal(custom[name], expected[type], `search attribute ${name} should be ${type}`);
    }
  });

  test('stack harness - JetStream creates a stream and acknowledges a publish', async () => {
    const nc = await stack.nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'HARNESS', subjects: ['harness.>'] });
    const ack = await jetstream(nc).publish('harness.one', encoder.encode('hello'));
    assert.equal(ack.stream, 'HARNESS');
    assert.equal(ack.seq, 1);
  });

  test('stack harness - nats-server killed with SIGKILL restarts on the same port with its streams', async () => {
    const nc = await stack.nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'DURABLE', subjects: ['durable.>'] });
    await jetstream(nc).publish('durable.a', encoder.encode('before the crash'));
    const oldPid = stack.nats.pid;

    await stack.nats.kill();
    assert.equal(await isAlive(oldPid), false);
    await stack.nats.restart();
    assert.notEqual(stack.nats.pid, oldPid);

    // The same client reconnects by itself and finds the stream and its message on disk.
    const info = await (await jetstreamManager(nc)).streams.info('DURABLE');
    assert.equal(info.state.messages, 1);
    const ack = await jetstream(nc).publish('durable.b', encoder.encode('after the restart'));
    assert.equal(ack.seq, 2);
  });

  test('stack harness - the UI answers HTTP', async () => {
    const response = await fetch(stack.temporal.uiUrl);
    assert.equal(response.status, 200);
    await response.body?.cancel();
  });
});

test('stack harness - servers die with a test process that is SIGKILLed', async () => {
  const helper = fileURLToPath(new URL('../helpers/servers.ts', import.meta.url));
  const script = `
    import { startNats } from ${JSON.stringify(helper)};
    const nats = await startNats();
    console.log(JSON.stringify({ pid: nats.pid, dir: nats.storeDir }));
    setInterval(() => {}, 60_000);
  `;
  const { child, firstLine: first } = await startScriptProcess(script);
  const { pid, dir } = JSON.parse(first) as { pid: number; dir: string };
  assert.equal(await isAlive(pid), true);
  child.kill('SIGKILL');
  await child;
  let gone = false;
  for (let i = 0; i < 100 && !gone; i++) {
    gone = !(await isAlive(pid));
    if (!gone) await sleep(100);
  }
  // The exit hook cannot run on SIGKILL, so the temp dir is this test's to remove.
  await rm(dirname(dir), { recursive: true, force: true });
  assert.equal(gone, true, `nats-server ${pid} outlived its SIGKILLed test process`);
});
