/* global process, setInterval */
// Shared by the recording fakes of kairos-agent and grub2-editenv: every call is appended
// to <state>/calls.jsonl; a file <state>/fail-<word> or <state>/hang-<word> makes the first call
// whose arguments contain <word> fail (exit 1) or hang.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function start(tool) {
  const [state, ...args] = process.argv.slice(2);
  appendFileSync(join(state, 'calls.jsonl'), `${JSON.stringify([tool, ...args])}\n`);
  for (const word of [tool, ...args]) {
    if (existsSync(join(state, `fail-${word}`))) {
      process.stderr.write(`${tool}: simulated failure on '${word}'\n`);
      process.exit(1);
    }
    if (existsSync(join(state, `hang-${word}`))) setInterval(() => undefined, 1000);
  }
  return { state, args, hanging: [tool, ...args].some((w) => existsSync(join(state, `hang-${w}`))) };
}

export function readJson(file, fallback) {
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : fallback;
}

export function writeJson(file, value) {
  writeFileSync(file, JSON.stringify(value));
}

export function readEnv(file) {
  const env = {};
  if (!existsSync(file)) return env;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

export function writeEnv(file, env) {
  writeFileSync(
    file,
    Object.entries(env)
      .map(([k, v]) => `${k}=${v}\n`)
      .join(''),
  );
}
