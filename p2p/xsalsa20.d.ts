// The `xsalsa20` package ships no types; p2p/pnet-cipher-fix.ts describes what it uses of it.
declare module 'xsalsa20' {
  const xsalsa20: (nonce: Uint8Array, key: Uint8Array) => unknown;
  export default xsalsa20;
}
