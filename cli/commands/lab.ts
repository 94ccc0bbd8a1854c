import { resolve } from 'node:path';
import { parseFlags, type Command } from '../command.ts';
import { printJson } from '../context.ts';
import { UsageError } from '../usage-error.ts';

const rootfsUsage = 'slotflow lab rootfs --out DIR --version V [--agent] [--json]';

/**
 * `slotflow lab rootfs`: a bootable VM-lab slot rootfs (Debian kernel, lab initramfs, busybox,
 * the lab's init, optionally Node.js and the agent) for `slotflow image build --rootfs DIR`.
 */
export const labRootfs: Command = {
  path: ['lab', 'rootfs'],
  usage: rootfsUsage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      {
        out: { type: 'string' },
        version: { type: 'string' },
        agent: { type: 'boolean' },
        json: { type: 'boolean' },
      },
      rootfsUsage,
    );
    if (!values.out) throw new UsageError(`--out is required (a new directory)\nusage: ${rootfsUsage}`);
    if (!values.version) throw new UsageError(`--version is required\nusage: ${rootfsUsage}`);
    const { writeLabRootfs } = await import('../../lab/slot-rootfs-dir.ts');
    const { agentBundle } = await import('../../lab/agent-bundle.ts');
    const out = resolve(values.out);
    await writeLabRootfs(out, {
      version: values.version,
      ...(values.agent ? { agent: await agentBundle() } : {}),
    });
    if (values.json) printJson({ rootfs: out, version: values.version, agent: !!values.agent });
    else
      process.stdout.write(
        `${out}\n  build the slot image: slotflow image build --rootfs ${out} --version ${values.version} --format ext4\n`,
      );
    return 0;
  },
};
