/* global process */
// Recording fake of grub2-editenv: `<file> list|set k=v…|unset k…`.
import { readEnv, start, writeEnv } from './fake-common.mjs';

const { args, hanging } = start('grub2-editenv');
if (!hanging) {
  const [file, command, ...rest] = args;
  const env = readEnv(file);
  if (command === 'list') {
    for (const [k, v] of Object.entries(env)) process.stdout.write(`${k}=${v}\n`);
  } else if (command === 'set') {
    for (const kv of rest) env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
    writeEnv(file, env);
  } else if (command === 'unset') {
    for (const k of rest) delete env[k];
    writeEnv(file, env);
  } else {
    process.stderr.write(`grub2-editenv fake: unsupported command ${command}\n`);
    process.exit(2);
  }
}
