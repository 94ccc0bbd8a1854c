/** A fixed-size set of chunk indexes, bit i = chunk i, most significant bit first. */
export class Bitfield {
  readonly size: number;
  readonly bytes: Uint8Array;
  #count: number;
  constructor(size: number, bytes?: Uint8Array) {
    this.size = size;
    this.bytes = bytes ?? new Uint8Array(Math.ceil(size / 8));
    this.#count = 0;
    if (bytes) {
      // Bits past `size` in the last byte are padding and do not count.
      for (let i = 0; i < size; i++) if (this.has(i)) this.#count++;
    }
  }
  /** Decodes base64; undefined when the length does not fit `size`. */
  static fromBase64(text: string, size: number): Bitfield | undefined {
    const bytes = new Uint8Array(Buffer.from(text, 'base64'));
    if (bytes.length !== Math.ceil(size / 8)) return undefined;
    return new Bitfield(size, bytes);
  }
  has(i: number): boolean {
    return i >= 0 && i < this.size && (this.bytes[i >> 3]! & (0x80 >> (i & 7))) !== 0;
  }
  set(i: number): void {
    if (i < 0 || i >= this.size || this.has(i)) return;
    this.bytes[i >> 3]! |= 0x80 >> (i & 7);
    this.#count++;
  }
  clear(i: number): void {
    if (!this.has(i)) return;
    this.bytes[i >> 3]! &= ~(0x80 >> (i & 7));
    this.#count--;
  }
  count(): number {
    return this.#count;
  }
  complete(): boolean {
    return this.#count === this.size;
  }
  toBase64(): string {
    return Buffer.from(this.bytes).toString('base64');
  }
}
