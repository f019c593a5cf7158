import { randomFillSync } from "node:crypto";

// Entropy is drawn 4 KiB at a time: one randomFillSync per 256 ids instead of per id (each call
// enters OpenSSL, which checks getpid() for fork safety). Node's own randomUUID pools the same way.
const POOL_IDS = 256;
let pool = Buffer.alloc(0);
let offset = 0;

function randomSlice(size = 16): Buffer {
  if (offset + size > pool.length) {
    // A fresh buffer each time: ids already handed out keep no view into the pool.
    pool = randomFillSync(Buffer.allocUnsafe(16 * POOL_IDS));
    offset = 0;
  }
  const bytes = pool.subarray(offset, offset + size);
  offset += size;
  return bytes;
}

/** `bytes` random bytes (at most 64) as lower-case hex, from the same pool as the ids. */
export function randomHex(bytes: number): string {
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > 64) throw new RangeError(`randomHex takes 1 to 64 bytes, not ${bytes}`);
  return randomSlice(bytes).toString("hex");
}

/**
 * RFC 9562 UUIDv7: a millisecond timestamp followed by randomness. Ids sort by creation time,
 * which keeps b-tree inserts on the right edge of the index and makes them good cursors.
 */
export function uuidv7(now: number = Date.now()): string {
  const bytes = randomSlice();
  bytes[0] = Math.floor(now / 2 ** 40) & 0xff;
  bytes[1] = Math.floor(now / 2 ** 32) & 0xff;
  bytes[2] = (now >>> 24) & 0xff;
  bytes[3] = (now >>> 16) & 0xff;
  bytes[4] = (now >>> 8) & 0xff;
  bytes[5] = now & 0xff;
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
