/**
 * Test helpers for the TCP peer link: a raw connection that sends bytes and collects the frames
 * answered, and a cluster-secret signer as main.ts makes one. Not a test file itself.
 */
import { FrameReader } from "../../src/core/peer-frame.ts";
import { connectTcp } from "../../src/platform/tcp.ts";
import { ClusterAuth } from "../../src/security/cluster-auth.ts";

/**
 * Open a raw connection to a link port on loopback and send `bytes`: the frames answered, and
 * whether the server closed the connection within `waitMs` (ours is closed after that).
 */
export async function exchange(port: number, bytes: Uint8Array, waitMs = 500) {
  const got: { kind: number; text: string }[] = [];
  let closed = false;
  const r = new FrameReader(1024 * 1024);
  const conn = await connectTcp("127.0.0.1", port, {
    open() {},
    data(_c, b) {
      const frames = r.push(b);
      if (typeof frames === "string") return;
      for (const f of frames) got.push({ kind: f.kind, text: new TextDecoder().decode(f.payload) });
    },
    close() {
      closed = true;
    },
  });
  conn.write(bytes);
  for (let i = 0; i < waitMs / 10 && !closed; i++) await Bun.sleep(10);
  const byServer = closed;
  if (!byServer) conn.close();
  return { got, closed: byServer };
}

/** A signer for member `id` with `secret` (`now`: the clock it signs by). */
export function authFor(
  id: string,
  secret: string,
  o: { now?: () => number; windowMs?: number } = {},
): ClusterAuth {
  return new ClusterAuth([new TextEncoder().encode(secret)], {
    selfId: id,
    windowMs: o.windowMs ?? 5000,
    now: o.now ?? Date.now,
    random: Math.random,
    warn: () => {},
  });
}
