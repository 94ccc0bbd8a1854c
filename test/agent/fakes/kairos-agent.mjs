/* global process */
// Recording fake of kairos-agent: `state get boot|kairos.version` and `upgrade --source oci:…`.
import { join } from 'node:path';
import { readJson, start, writeJson, readEnv, writeEnv } from './fake-common.mjs';

const { state, args, hanging } = start('kairos-agent');
if (!hanging) {
  const file = join(state, 'kairos.json');
  const k = readJson(file, { booted: 'cos', images: { cos: { version: '1.0.0' } } });
  if (args[0] === 'state' && args[1] === 'get' && args[2] === 'boot') {
    process.stdout.write(k.booted === 'cos' ? 'active_boot\n' : 'passive_boot\n');
  } else if (args[0] === 'state' && args[1] === 'get' && args[2] === 'kairos.version') {
    // What the running system's /etc/kairos-release says, not what its entry holds now.
    process.stdout.write(`${k.running ?? k.images[k.booted]?.version ?? ''}\n`);
  } else if (args[0] === 'upgrade' && args[1] === '--source' && args[2]?.startsWith('oci:')) {
    // The version is the reference's tag: oci:registry/os:1.2.3@sha256:…
    const ref = args[2].slice(4).split('@')[0];
    const version = ref.slice(ref.lastIndexOf(':') + 1);
    k.images.fallback = k.images.cos;
    k.images.cos = { version };
    writeJson(file, k);
    const env = readEnv(join(state, 'grubenv'));
    env.saved_entry = 'cos';
    writeEnv(join(state, 'grubenv'), env);
  } else {
    process.stderr.write(`kairos-agent fake: unsupported arguments ${args.join(' ')}\n`);
    process.exit(2);
  }
}
