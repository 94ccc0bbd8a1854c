// The libp2p peer id of an ed25519 key, computed here so that signing and verifying node events
// never load libp2p: an identity multihash over the protobuf-encoded public key, in base58btc
// (the `12D3KooW…` form libp2p prints for ed25519 peers).

const BASE58_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

// protobuf PublicKey { Type = 1 (Ed25519); Data = 32 bytes }, behind the identity multihash
// header (code 0x00, length 36).
const ED25519_PEER_ID_PREFIX = Uint8Array.of(0x00, 0x24, 0x08, 0x01, 0x12, 0x20);

/** Bitcoin's base58 (libp2p's `base58btc`, without the multibase `z` prefix). */
export function base58btc(bytes: Uint8Array): string {
  const digits: number[] = [];
  for (const byte of bytes) {
    let carry = byte;
    for (let i = 0; i < digits.length; i++) {
      carry += digits[i]! << 8;
      digits[i] = carry % 58;
      carry = Math.floor(carry / 58);
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = Math.floor(carry / 58);
    }
  }
  let out = '';
  for (let i = 0; i < bytes.length && bytes[i] === 0; i++) out += '1';
  for (let i = digits.length - 1; i >= 0; i--) out += BASE58_ALPHABET[digits[i]!];
  return out;
}

/** The peer id of a raw 32-byte ed25519 public key; undefined for any other length. */
export function ed25519PeerId(raw: Uint8Array): string | undefined {
  if (raw.length !== 32) return undefined;
  const multihash = new Uint8Array(ED25519_PEER_ID_PREFIX.length + 32);
  multihash.set(ED25519_PEER_ID_PREFIX);
  multihash.set(raw, ED25519_PEER_ID_PREFIX.length);
  return base58btc(multihash);
}
