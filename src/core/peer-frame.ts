/**
 * Frames of the raw TCP peer link (issue 17 part 1; src/transport/peer-tcp.ts):
 *
 *   u32 length | u32 request id | u8 kind | payload
 *
 * big-endian; `length` counts the bytes after itself (5 + payload bytes). Pure: no sockets here.
 * A FrameReader takes the bytes of a stream in whatever chunks they come and hands out whole
 * frames; a length below 5 or above the limit is an error (the caller closes the connection),
 * as is a stream that ends inside a frame (`truncated`).
 */

/** Bytes before the payload: length, request id, kind. */
export const FRAME_HEADER_BYTES = 9;

/**
 * Frame kinds: the hello, one per peer call (the HTTP internal route of the same name; the
 * payload is that route's request body: JSON, or a move frame's bytes), and the two answers (a
 * JSON answer, or a refusal: status + message).
 */
export const FrameKind = {
  /** The first frame each side sends: payload PEER_LINK_MAGIC. */
  hello: 0,
  read: 1,
  write: 2,
  paxos: 3,
  hints: 4,
  digests: 5,
  buckets: 6,
  versions: 7,
  list: 8,
  watchPoll: 9,
  moveRecords: 10,
  moveDone: 11,
  status: 12,
  gossip: 13,
  /** A kv/write as a write frame (src/core/move-frame.ts), not JSON. */
  writeRecords: 14,
  ok: 0x80,
  error: 0x81,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/**
 * The hello payload: a connection that starts otherwise is not a dkv peer link. The version
 * says which frames the link carries (2: every peer call, kv/write in binary); a member that
 * speaks another refuses the hello, and the calls between the two go over HTTP.
 */
export const PEER_LINK_MAGIC = "dkv-peer-link/2";

/**
 * With a cluster secret each hello also carries a signature (src/security/cluster-auth.ts), after
 * the magic and one newline: the client's is a request's `x-dkv-auth` header, signed for method
 * LINK, this target and the magic as its body; the server's an answer's header, for status 200,
 * the same method, target and body, naming the client's nonce. The same HMAC, time window and
 * replay rules as the internal HTTP calls.
 */
export const PEER_LINK_AUTH_METHOD = "LINK";
export const PEER_LINK_AUTH_TARGET = "/internal/v1/peer-link";
export const PEER_LINK_AUTH_BODY = new TextEncoder().encode(PEER_LINK_MAGIC);

/** A hello's payload: the magic, and the signature when there is one. */
export function helloText(signature: string | undefined): string {
  return signature === undefined ? PEER_LINK_MAGIC : `${PEER_LINK_MAGIC}\n${signature}`;
}

/**
 * A hello's payload read: its signature (null when it carries none), or undefined when it is no
 * dkv peer link hello at all.
 */
export function readHello(payload: Uint8Array): { signature: string | null } | undefined {
  if (payload.length > PEER_LINK_MAGIC.length + 1 + 2048) return undefined;
  const text = new TextDecoder().decode(payload);
  if (text === PEER_LINK_MAGIC) return { signature: null };
  if (!text.startsWith(`${PEER_LINK_MAGIC}\n`)) return undefined;
  const signature = text.slice(PEER_LINK_MAGIC.length + 1);
  return signature.includes("\n") ? undefined : { signature };
}

export interface Frame {
  readonly id: number;
  readonly kind: number;
  /** A view of the reader's bytes: valid until the next `push`. */
  readonly payload: Uint8Array;
}

/** One frame's bytes. */
export function encodeFrame(id: number, kind: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  writeHeader(out, id, kind, payload.length);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

const encoder = new TextEncoder();

/** One frame whose payload is `text` as UTF-8, encoded straight into the frame (one copy). */
export function encodeTextFrame(id: number, kind: number, text: string): Uint8Array {
  // At most 3 bytes per UTF-16 unit; the frame is cut to what was written.
  const buf = new Uint8Array(FRAME_HEADER_BYTES + text.length * 3);
  const { written } = encoder.encodeInto(text, buf.subarray(FRAME_HEADER_BYTES));
  writeHeader(buf, id, kind, written);
  return buf.subarray(0, FRAME_HEADER_BYTES + written);
}

function writeHeader(buf: Uint8Array, id: number, kind: number, payloadBytes: number): void {
  const v = new DataView(buf.buffer, buf.byteOffset, FRAME_HEADER_BYTES);
  v.setUint32(0, payloadBytes + 5);
  v.setUint32(4, id >>> 0);
  v.setUint8(8, kind);
}

/**
 * Reassembles frames from a byte stream. `push` returns the frames now complete, or an error
 * message (then the stream is broken: nothing more is read). `maxFrameBytes` bounds a frame's
 * payload.
 */
export class FrameReader {
  #buf = new Uint8Array(0);
  #len = 0;
  #broken: string | undefined;

  constructor(readonly maxFrameBytes: number) {}

  /** Bytes held of a frame not yet whole. */
  get pending(): number {
    return this.#len;
  }

  push(chunk: Uint8Array): Frame[] | string {
    if (this.#broken !== undefined) return this.#broken;
    let data: Uint8Array;
    if (this.#len === 0) data = chunk;
    else {
      this.#append(chunk);
      data = this.#buf.subarray(0, this.#len);
    }
    const frames: Frame[] = [];
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let off = 0;
    while (data.length - off >= 4) {
      const length = v.getUint32(off);
      if (length < 5) return this.#break(`frame length ${length} is below 5`);
      if (length - 5 > this.maxFrameBytes) {
        return this.#break(`frame of ${length - 5} bytes; the limit is ${this.maxFrameBytes}`);
      }
      if (data.length - off - 4 < length) break;
      frames.push({
        id: v.getUint32(off + 4),
        kind: v.getUint8(off + 8),
        payload: data.subarray(off + FRAME_HEADER_BYTES, off + 4 + length),
      });
      off += 4 + length;
    }
    const rest = data.length - off;
    if (data === chunk) {
      // Keep the tail of a frame not yet whole (copied: the chunk is the runtime's).
      if (rest > 0) this.#append(chunk.subarray(off));
    } else if (rest === 0) this.#len = 0;
    else {
      // Frames handed out view #buf: the tail goes to a new buffer, not over them.
      const tail = this.#buf.slice(off, this.#len);
      this.#buf = new Uint8Array(Math.max(tail.length * 2, 4096));
      this.#buf.set(tail);
      this.#len = tail.length;
    }
    return frames;
  }

  /** The stream ended: an error message if it ended inside a frame. */
  end(): string | undefined {
    if (this.#broken !== undefined) return this.#broken;
    return this.#len > 0
      ? `truncated frame: the stream ended ${this.#len} bytes into it`
      : undefined;
  }

  #append(chunk: Uint8Array): void {
    const need = this.#len + chunk.length;
    if (need > this.#buf.length) {
      const grown = new Uint8Array(Math.max(need, this.#buf.length * 2, 4096));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    this.#buf.set(chunk, this.#len);
    this.#len = need;
  }

  #break(why: string): string {
    this.#broken = why;
    this.#buf = new Uint8Array(0);
    this.#len = 0;
    return why;
  }
}

/**
 * Frames queued during one task go out in one write (one system call) when its microtasks run:
 * the answers to every frame of one chunk read, the calls of one batch flush.
 */
export class FrameCork {
  #frames: Uint8Array[] = [];
  #bytes = 0;

  constructor(
    private readonly write: (bytes: Uint8Array) => void,
    private readonly schedule: (fn: () => void) => void = queueMicrotask,
  ) {}

  push(frame: Uint8Array): void {
    if (this.#frames.length === 0) this.schedule(() => this.flush());
    this.#frames.push(frame);
    this.#bytes += frame.length;
  }

  flush(): void {
    const frames = this.#frames;
    if (frames.length === 0) return;
    this.#frames = [];
    if (frames.length === 1) this.write(frames[0]!);
    else {
      const out = new Uint8Array(this.#bytes);
      let off = 0;
      for (const f of frames) {
        out.set(f, off);
        off += f.length;
      }
      this.write(out);
    }
    this.#bytes = 0;
  }
}
