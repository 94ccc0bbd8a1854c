import { gzipSync } from 'node:zlib';

/** One entry of a newc cpio archive, as the kernel unpacks an initramfs. */
export type CpioEntry =
  | { readonly type: 'dir'; readonly path: string; readonly mode?: number }
  | { readonly type: 'file'; readonly path: string; readonly data: Buffer; readonly mode?: number }
  | { readonly type: 'symlink'; readonly path: string; readonly target: string };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

const hex8 = (n: number) => n.toString(16).padStart(8, '0');
const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);

function record(ino: number, mode: number, name: string, data: Buffer): Buffer {
  const nameBytes = Buffer.from(`${name}\0`);
  // newc header: magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
  // rdevmajor, rdevminor, namesize, check. Owner root and time 0 keep the archive reproducible.
  const fields = [ino, mode, 0, 0, mode & S_IFDIR ? 2 : 1, 0, data.length, 0, 0, 0, 0, nameBytes.length, 0];
  const header = Buffer.from(`070701${fields.map(hex8).join('')}`);
  const head = Buffer.concat([header, nameBytes]);
  return Buffer.concat([head, pad4(head.length), data, pad4(data.length)]);
}

/** A gzip-compressed newc cpio archive of the entries, in the order given (parents first). */
export function gzipCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    if (e.type === 'dir') parts.push(record(ino++, S_IFDIR | (e.mode ?? 0o755), name, Buffer.alloc(0)));
    else if (e.type === 'file') parts.push(record(ino++, S_IFREG | (e.mode ?? 0o644), name, e.data));
    else parts.push(record(ino++, S_IFLNK | 0o777, name, Buffer.from(e.target)));
  }
  parts.push(record(0, 0, 'TRAILER!!!', Buffer.alloc(0)));
  return gzipSync(Buffer.concat(parts), { level: 6 });
}
