// Recording fakes of kairos-agent and the grub2-editenv Kairos uses (kairos-agent cannot be built
// here), plus the firmware's part of a Kairos reboot, so the kairos driver can be driven through
// whole cycles. RAUC and GRUB are tested against the real rauc and grub-editenv.
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const FAKES = fileURLToPath(new URL('.', import.meta.url));

/** A sandbox with the fake tools' wrapper scripts and their shared state. */
export interface FakeTools {
  readonly dir: string;
  readonly state: string;
  readonly grubenv: string;
  readonly bin: { readonly kairosAgent: string; readonly grubEditenv: string };
  /** Every call so far, in order: [tool, ...args]. */
  calls(): Promise<string[][]>;
  clearCalls(): Promise<void>;
  /** The next calls whose arguments contain `word` fail (exit 1) / hang, until cleared. */
  failOn(word: string): Promise<void>;
  hangOn(word: string): Promise<void>;
  clearFaults(): Promise<void>;
  /** The kernel's boot id of the simulated machine (changes with every fake reboot). */
  bootId(): Promise<string>;
  /** The firmware at power-on for Kairos: one-shot next_entry, else saved_entry. */
  rebootKairos(): Promise<void>;
  cleanup(): Promise<void>;
}

async function readEnv(file: string): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  const text = await readFile(file, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

/** Creates the sandbox; the fakes start as a node booted from slot A / the `cos` entry at 1.0.0. */
export async function createFakeTools(): Promise<FakeTools> {
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-fakes-'));
  const state = join(dir, 'state');
  const binDir = join(dir, 'bin');
  await mkdir(state);
  await mkdir(binDir);
  const wrap = async (name: string, script: string) => {
    const path = join(binDir, name);
    await writeFile(path, `#!/bin/sh\nexec "${process.execPath}" "${join(FAKES, script)}" "${state}" "$@"\n`);
    await chmod(path, 0o755);
    return path;
  };
  const bin = {
    kairosAgent: await wrap('kairos-agent', 'kairos-agent.mjs'),
    grubEditenv: await wrap('grub2-editenv', 'grub2-editenv.mjs'),
  };
  const grubenv = join(state, 'grubenv');
  const faults = new Set<string>();
  return {
    dir,
    state,
    grubenv,
    bin,
    async calls() {
      const text = await readFile(join(state, 'calls.jsonl'), 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as string[]);
    },
    async clearCalls() {
      await rm(join(state, 'calls.jsonl'), { force: true });
    },
    async failOn(word) {
      faults.add(`fail-${word}`);
      await writeFile(join(state, `fail-${word}`), '');
    },
    async hangOn(word) {
      faults.add(`hang-${word}`);
      await writeFile(join(state, `hang-${word}`), '');
    },
    async clearFaults() {
      for (const f of faults) await rm(join(state, f), { force: true });
      faults.clear();
    },
    async bootId() {
      return (await readFile(join(state, 'boot-id'), 'utf8').catch(() => 'boot-0')).trim();
    },
    async rebootKairos() {
      const file = join(state, 'kairos.json');
      const k = JSON.parse(
        await readFile(file, 'utf8').catch(() => '{"booted":"cos","images":{"cos":{"version":"1.0.0"}}}'),
      );
      const env = await readEnv(grubenv);
      k.booted = env['next_entry'] ?? env['saved_entry'] ?? 'cos';
      k.running = k.images[k.booted]?.version;
      delete env['next_entry'];
      await writeFile(join(state, 'boot-id'), randomUUID());
      await writeFile(
        grubenv,
        Object.entries(env)
          .map(([key, v]) => `${key}=${v}\n`)
          .join(''),
      );
      await writeFile(file, JSON.stringify(k));
    },
    async cleanup() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}
