// @libp2p/pnet encrypts every connection with the `xsalsa20` package, whose WebAssembly build
// shares one memory between all cipher instances, and each instance keeps its own view of it.
// When one instance grows the memory, the other views are detached (length 0), and their next
// update "grows" the memory by its whole size again: with a few busy connections the memory hits
// its 64 MiB ceiling within seconds and the process dies (RangeError from Memory.grow). Until the
// package is fixed, each instance refreshes its view before using it. grow(0) gives the current
// buffer without growing; it detaches the other views, which refresh themselves the same way.
import xsalsa20Package from 'xsalsa20';

interface WasmCipher {
  _memory: Uint8Array;
  realloc(size: number): void;
  update(input: Uint8Array, output: Uint8Array): void;
  finalize(): void;
}
/** One XSalsa20 stream (the cipher of one direction of a pnet connection). */
export interface XSalsa20 {
  _xor: WasmCipher | object;
  /** XORs the next bytes of the key stream into `input`. */
  update(input: Uint8Array): Uint8Array;
  finalize(): void;
}

/**
 * The `xsalsa20` package, the very module instance `@libp2p/pnet` uses. Imported statically so
 * that the agent's bundle (lab/agent-bundle.ts) carries it too.
 */
export const xsalsa20 = xsalsa20Package as (nonce: Uint8Array, key: Uint8Array) => XSalsa20;

let patched = false;

/** Makes the `xsalsa20` cipher that `@libp2p/pnet` uses safe with many connections; idempotent. */
export function fixPnetCipher(): void {
  if (patched) return;
  patched = true;
  const probe = xsalsa20(new Uint8Array(24), new Uint8Array(32));
  const proto = Object.getPrototypeOf(probe._xor) as WasmCipher;
  probe.finalize();
  // The pure-JavaScript fallback (no WebAssembly) has no shared memory: nothing to fix.
  if (typeof proto.realloc !== 'function') return;
  const refresh = (cipher: WasmCipher): void => {
    if (cipher._memory.byteLength === 0) cipher.realloc(0);
  };
  const { update, finalize } = proto;
  proto.update = function (this: WasmCipher, input, output) {
    refresh(this);
    update.call(this, input, output);
  };
  proto.finalize = function (this: WasmCipher) {
    refresh(this);
    finalize.call(this);
  };
}
