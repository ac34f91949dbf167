/**
 * RESP test support: a raw transcript over node:net (send bytes, read until the server closes
 * or goes quiet), frames of words, redis-server started on a loopback port, and the protocol
 * fuzzer's seeded malformed frames.
 */
import { Buffer } from "node:buffer";
import { connect } from "node:net";
import { type Proc, spawnLogged } from "./cluster.ts";
import { type Rng, rng } from "../unit/seeded.ts";

/** A multibulk frame of these words. */
export function frame(...words: (string | Uint8Array)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${words.length}\r\n`)];
  for (const w of words) {
    const b = typeof w === "string" ? Buffer.from(w) : Buffer.from(w);
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

/**
 * Send `bytes` to port on 127.0.0.1 and collect what comes back until the server closes the
 * connection, or nothing came for `quietMs` (then we close).
 */
export function transcript(
  port: number,
  bytes: Uint8Array,
  quietMs = 1000,
): Promise<{ reply: Buffer; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const sock = connect({ host: "127.0.0.1", port });
    let timer: ReturnType<typeof setTimeout> | undefined;
    let done = false;
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ reply: Buffer.concat(chunks), closedByServer });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(false), quietMs);
    };
    sock.on("connect", () => {
      sock.write(bytes);
      arm();
    });
    sock.on("data", (d: Buffer) => {
      chunks.push(d);
      arm();
    });
    sock.on("end", () => finish(true));
    sock.on("close", () => finish(true));
    sock.on("error", () => finish(true));
  });
}

/** redis-server on `port`, no persistence, as a tracked process (killed by stopAll). */
export function startRedisServer(port: number): Proc {
  return spawnLogged(`redis-${port}`, [
    "redis-server",
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
  ], port);
}

/** One malformed frame of the fuzzer, drawn from its own stream (seed, i). */
export function fuzzFrame(seed: number, i: number): { kind: string; bytes: Buffer } {
  const r = rng((seed * 1_000_003 + i) >>> 0);
  const kinds = ["badLength", "negative", "truncated", "hugeArray", "nonNumeric", "garbage"];
  const kind = r.pick(kinds);
  const word = () => Buffer.from(randomWord(r));
  switch (kind) {
    case "badLength": {
      // A bulk length that does not match the bytes that follow.
      const w = word();
      const len = Math.max(0, w.length + (r.int(2) === 0 ? -1 - r.int(3) : 1 + r.int(3)));
      return {
        kind,
        bytes: Buffer.concat([
          Buffer.from(`*2\r\n$3\r\nGET\r\n$${len}\r\n`),
          w,
          Buffer.from("\r\n"),
        ]),
      };
    }
    case "negative": {
      const n = -1 - r.int(1000);
      return {
        kind,
        bytes: Buffer.from(r.int(2) === 0 ? `*1\r\n$${n}\r\n` : `*${n - 1}\r\n$3\r\nGET\r\n`),
      };
    }
    case "truncated": {
      const full = frame("SET", `fz${randomWord(r)}`, randomWord(r));
      return { kind, bytes: full.subarray(0, 1 + r.int(full.length - 1)) };
    }
    case "hugeArray": {
      const n = 1024 * 1024 + 1 + r.int(1_000_000_000);
      return { kind, bytes: Buffer.from(`*${n}\r\n$3\r\nGET\r\n`) };
    }
    case "nonNumeric": {
      const junk = ["abc", "1x", "", " 3", "3 ", "0x10", "1e3", "+5", "٣"][r.int(9)]!;
      return {
        kind,
        bytes: Buffer.from(r.int(2) === 0 ? `*${junk}\r\n` : `*1\r\n$${junk}\r\nPING\r\n`),
      };
    }
    default: {
      const n = 1 + r.int(300);
      const b = Buffer.alloc(n);
      for (let k = 0; k < n; k++) b[k] = r.int(256);
      // Half start like a frame, so they get past the first byte.
      if (r.int(2) === 0) b[0] = 42;
      return { kind: "garbage", bytes: b };
    }
  }
}

function randomWord(r: Rng): string {
  const n = 1 + r.int(12);
  let s = "";
  for (let k = 0; k < n; k++) s += String.fromCharCode(97 + r.int(26));
  return s;
}
