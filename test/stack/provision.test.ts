import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { goInstall } from '../../stack/go-install.ts';
import type { Runner } from '../../runtime/runner.ts';

const main = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
const scratch: string[] = [];
after(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-provision-'));
  scratch.push(dir);
  return dir;
}

/** Runs `slotflow provision` with exactly the given environment (plus HOME). */
function provision(args: string[], env: Record<string, string>) {
  return execa(process.execPath, ['--disable-warning=ExperimentalWarning', main, 'provision', ...args], {
    reject: false,
    extendEnv: false,
    env: { HOME: process.env['HOME'] ?? '/root', PATH: process.env['PATH'] ?? '', ...env },
    timeout: 60_000,
  });
}

test('provision - TEMPORAL_CLI pointing at a missing file is a clear error', async () => {
  const result = await provision([], { TEMPORAL_CLI: '/nonexistent' });
  assert.equal(result.exitCode, 1);
  assert.match(
    result.stderr,
    /TEMPORAL_CLI=\/nonexistent is not a usable Temporal CLI: \/nonexistent does not exist/,
  );
  assert.match(result.stderr, /point TEMPORAL_CLI at a working temporal binary/);
  assert.equal(result.stdout, '');
});

test('provision - NATS_SERVER pointing at a non-executable file is a clear error', async () => {
  const dir = await tempDir();
  const notABinary = join(dir, 'nats-server');
  await writeFile(notABinary, 'not a program\n', { mode: 0o644 });
  const result = await provision(['--json'], { NATS_SERVER: notABinary });
  assert.equal(result.exitCode, 1);
  assert.match(
    result.stderr,
    new RegExp(`NATS_SERVER=${notABinary} is not a usable nats-server: .*not executable`),
  );
  assert.equal(result.stdout, '');
});

test('provision - --json prints the located binaries and logs each step as slotflow setup', async () => {
  const result = await provision(['--json'], {});
  assert.equal(result.exitCode, 0, result.stderr);
  const tools = JSON.parse(result.stdout) as Record<'temporal' | 'nats', { path: string; source: string }>;
  assert.ok(existsSync(tools.temporal.path));
  assert.ok(existsSync(tools.nats.path));
  assert.match(result.stderr, /^slotflow setup: Temporal CLI: /m);
  assert.match(result.stderr, /^slotflow setup: nats-server: /m);
});

test('provision - without Go and an empty cache: Debian nats-server with a warning, Temporal says how to provide it', async (t) => {
  // A PATH with node but without the Go toolchain.
  const path = `${dirname(process.execPath)}:/usr/bin:/bin`;
  if (existsSync('/usr/bin/go') || existsSync('/bin/go')) return t.skip('go is installed in /usr/bin');
  const cache = await tempDir();
  const result = await provision([], { PATH: path, SLOTFLOW_CACHE: cache });
  assert.equal(result.exitCode, 1);
  assert.match(result.stderr, /cannot provide the Temporal CLI: the Go toolchain is not usable/);
  assert.match(result.stderr, /set TEMPORAL_CLI=\/path\/to\/temporal/);
  if (existsSync('/usr/sbin/nats-server')) {
    assert.match(result.stderr, /warning: nats-server: .*falling back to \/usr\/sbin\/nats-server/);
  }
});

// go install itself is minutes of network and compiling, so these two drive goInstall with a
// runner that plays the toolchain; what they pin down is the file handling around it.
function fakeGo(build: (gobin: string) => Promise<boolean>): Runner {
  return {
    async run(file, args, options) {
      if (args[0] === 'version') return { ok: true, stdout: 'go version go1.99 linux/amd64\n', stderr: '' };
      const ok = await build(options?.env?.['GOBIN'] ?? '');
      return ok
        ? { ok, stdout: '', stderr: '' }
        : { ok, stdout: '', stderr: '', failure: `${file} exited with code 1` };
    },
  };
}

test('provision - an interrupted build leaves no binary and no build directory behind', async () => {
  const binDir = await tempDir();
  const result = await goInstall({
    pkg: 'example.com/tool',
    version: 'v1.0.0',
    binary: 'tool',
    binDir,
    env: {},
    say: () => {},
    runner: fakeGo(async (gobin) => {
      await writeFile(join(gobin, 'tool'), 'half a bin');
      return false;
    }),
  });
  assert.equal(result.ok, false);
  assert.deepEqual(await readdir(binDir), []);
});

test('provision - a finished build is moved into the cache under its name', async () => {
  const binDir = await tempDir();
  const result = await goInstall({
    pkg: 'example.com/tool',
    version: 'v1.0.0',
    binary: 'tool',
    binDir,
    env: {},
    say: () => {},
    runner: fakeGo(async (gobin) => {
      await writeFile(join(gobin, 'tool'), '#!/bin/sh\n', { mode: 0o755 });
      return true;
    }),
  });
  assert.deepEqual(result, { ok: true, path: join(binDir, 'tool') });
  assert.deepEqual(await readdir(binDir), ['tool']);
});
