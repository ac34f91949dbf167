/**
 * A plain TCP listener (the RESP front, src/resp): Bun.listen under Bun, Deno.listen under Deno.
 * The caller sees connections that take bytes in (`onData`), write bytes out (buffered here
 * until the kernel takes them), can stop and start reading (backpressure) and be closed.
 */
import { PortInUseError, type TlsMaterial } from "./index.ts";

export interface TcpConn {
  /** Send bytes (or queue them, copied, until the socket drains): `bytes` may be reused after. */
  write(bytes: Uint8Array): void;
  /** Bytes written but not yet taken by the kernel. */
  readonly unsentBytes: number;
  /** Stop reading (the client's sends then wait in TCP) / start again. */
  pause(): void;
  resume(): void;
  /** Close after the queued bytes are sent (best effort). */
  close(): void;
  readonly remote: string;
}

export interface TcpHandlers {
  open(conn: TcpConn): void;
  data(conn: TcpConn, bytes: Uint8Array): void;
  close(conn: TcpConn): void;
  /** Everything queued was sent (after a write that had to wait). */
  drained?(conn: TcpConn): void;
}

export interface TcpServer {
  stop(): void;
  /** The port listened on (the one the OS picked when asked for 0). */
  readonly port: number;
}

interface BunSocket {
  write(data: Uint8Array): number;
  end(): void;
  pause(): void;
  resume(): void;
  setNoDelay?(v: boolean): boolean;
  remoteAddress: string;
  data: BunConn | undefined;
}

class BunConn implements TcpConn {
  #queue: Uint8Array[] = [];
  #queued = 0;
  #closing = false;
  constructor(private readonly s: BunSocket, private readonly h: TcpHandlers) {}
  get unsentBytes(): number {
    return this.#queued;
  }
  get remote(): string {
    return this.s.remoteAddress;
  }
  write(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.#queued > 0) {
      this.#queue.push(bytes.slice());
      this.#queued += bytes.length;
      return;
    }
    const n = this.s.write(bytes);
    if (n < 0) return; // closed
    if (n < bytes.length) {
      this.#queue.push(bytes.slice(n));
      this.#queued += bytes.length - n;
    }
  }
  drain(): void {
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const n = this.s.write(head);
      if (n < 0) {
        this.#queue = [];
        this.#queued = 0;
        return;
      }
      this.#queued -= n;
      if (n < head.length) {
        this.#queue[0] = head.subarray(n);
        return;
      }
      this.#queue.shift();
    }
    if (this.#closing) this.s.end();
    else this.h.drained?.(this);
  }
  pause(): void {
    this.s.pause();
  }
  resume(): void {
    this.s.resume();
  }
  close(): void {
    this.#closing = true;
    if (this.#queued === 0) this.s.end();
  }
}

interface DenoConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
  remoteAddr: { hostname?: string; port?: number };
  setNoDelay?(v: boolean): void;
}
interface DenoListener {
  accept(): Promise<DenoConn>;
  close(): void;
  readonly addr: { port: number };
}
interface DenoTcp {
  listen(o: { hostname: string; port: number; transport: "tcp" }): DenoListener;
}

class DenoTcpConn implements TcpConn {
  #queued = 0;
  #writing: Promise<void> = Promise.resolve();
  #paused: { promise: Promise<void>; resolve: () => void } | undefined;
  #closed = false;
  constructor(private readonly c: DenoConn, private readonly h: TcpHandlers) {}
  get unsentBytes(): number {
    return this.#queued;
  }
  get remote(): string {
    return `${this.c.remoteAddr.hostname}:${this.c.remoteAddr.port}`;
  }
  write(bytes: Uint8Array): void {
    if (bytes.length === 0 || this.#closed) return;
    bytes = bytes.slice();
    this.#queued += bytes.length;
    this.#writing = this.#writing.then(async () => {
      let off = 0;
      try {
        while (off < bytes.length) off += await this.c.write(bytes.subarray(off));
      } catch {
        this.shut();
      }
      this.#queued -= bytes.length;
      if (this.#queued === 0) this.h.drained?.(this);
    });
  }
  pause(): void {
    if (this.#paused !== undefined) return;
    let resolve = () => {};
    const promise = new Promise<void>((r) => (resolve = r));
    this.#paused = { promise, resolve };
  }
  resume(): void {
    const p = this.#paused;
    this.#paused = undefined;
    p?.resolve();
  }
  close(): void {
    void this.#writing.then(() => this.shut());
  }
  shut(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.c.close();
    } catch {
      // Already closed.
    }
  }
  async run(): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        if (this.#paused) await this.#paused.promise;
        if (this.#closed) break;
        const n = await this.c.read(buf);
        if (n === null) break;
        this.h.data(this, buf.slice(0, n));
      }
    } catch {
      // Reset by the peer, or closed by us.
    }
    this.shut();
    this.h.close(this);
  }
}

/**
 * Bun's TLS options from the member's TLS material (the same as its HTTPS): a listener requests
 * and checks client certificates under mutual TLS; a dialer always checks the server's
 * certificate against the CA (the runtime's roots without one) and shows its own.
 */
function bunTls(tls: TlsMaterial, side: "listen" | "connect"): Record<string, unknown> {
  const ca = tls.ca === undefined ? {} : { ca: tls.ca };
  const check = side === "connect" || tls.clientAuth;
  return {
    cert: tls.cert,
    key: tls.key,
    ...ca,
    ...(side === "listen" && tls.clientAuth ? { requestCert: true } : {}),
    rejectUnauthorized: check,
  };
}

/**
 * The socket handlers of a Bun listener or dialer. Over TLS a connection is handed to `h` only
 * once its handshake succeeded (bytes written before it would be lost); a failed one, or one
 * whose peer certificate did not verify where it had to, is closed unseen. `onReady` is told
 * either way (the dialer's promise).
 */
function bunSocketHandlers(
  h: TcpHandlers,
  tls: boolean,
  mustVerify: boolean,
  onReady?: (ok: boolean) => void,
): Record<string, unknown> {
  const start = (s: BunSocket) => {
    s.setNoDelay?.(true);
    const c = new BunConn(s, h);
    s.data = c;
    h.open(c);
    onReady?.(true);
  };
  return {
    open(s: BunSocket) {
      if (!tls) start(s);
    },
    handshake(s: BunSocket, ok: boolean, authError: unknown) {
      if (!tls) return;
      if (!ok || (mustVerify && authError !== null && authError !== undefined)) {
        onReady?.(false);
        s.end();
        return;
      }
      start(s);
    },
    data(s: BunSocket, bytes: Uint8Array) {
      if (s.data) h.data(s.data, bytes);
    },
    drain(s: BunSocket) {
      s.data?.drain();
    },
    close(s: BunSocket) {
      if (s.data) h.close(s.data);
      s.data = undefined;
      onReady?.(false);
    },
    error(s: BunSocket) {
      if (s.data) h.close(s.data);
      s.data = undefined;
      onReady?.(false);
    },
    connectError() {
      // Bun.connect rejects: the caller sees the failure there.
      onReady?.(false);
    },
  };
}

const g = globalThis as unknown as {
  Bun?: {
    listen(o: unknown): { stop(force?: boolean): void; port: number };
    connect(o: unknown): Promise<BunSocket>;
  };
  Deno?: DenoTcp;
};

/** Can this runtime dial out with `connectTcp` (Bun only: under Deno peer calls stay on HTTP). */
export function canConnectTcp(): boolean {
  return g.Bun !== undefined;
}

/**
 * Dial host:port (Bun.connect, TCP_NODELAY on; over TLS with `tls`, the server's certificate
 * checked against its CA): the connection once open (and its handshake done), with the same
 * handlers as a listener's (`open` is called before this resolves). Rejects when the connection
 * is refused, or fails (or its handshake does) before opening.
 */
export async function connectTcp(
  host: string,
  port: number,
  h: TcpHandlers,
  tls?: TlsMaterial,
): Promise<TcpConn> {
  if (g.Bun === undefined) throw new Error("connectTcp needs Bun");
  let settle: (ok: boolean) => void = () => {};
  const ready = new Promise<boolean>((r) => (settle = r));
  let settled = false;
  const onReady = (ok: boolean) => {
    if (settled) return;
    settled = true;
    settle(ok);
  };
  const s = await g.Bun.connect({
    hostname: host,
    port,
    ...(tls === undefined ? {} : { tls: bunTls(tls, "connect") }),
    socket: bunSocketHandlers(h, tls !== undefined, true, onReady),
  });
  if (!(await ready) || s.data === undefined) {
    throw new Error(`connection to ${host}:${port} closed at once`);
  }
  return s.data;
}

/**
 * Listen on host:port (over TLS with `tls`: Bun only). Throws PortInUseError when the port is
 * taken.
 */
export function listenTcp(
  host: string,
  port: number,
  h: TcpHandlers,
  tls?: TlsMaterial,
): TcpServer {
  try {
    if (g.Bun) {
      const server = g.Bun.listen({
        hostname: host,
        port,
        ...(tls === undefined ? {} : { tls: bunTls(tls, "listen") }),
        socket: bunSocketHandlers(h, tls !== undefined, tls?.clientAuth === true),
      });
      return { stop: () => server.stop(true), port: server.port };
    }
    if (tls !== undefined) throw new Error("a TLS listener needs Bun");
    if (g.Deno) {
      const listener = g.Deno.listen({ hostname: host, port, transport: "tcp" });
      let stopped = false;
      void (async () => {
        while (!stopped) {
          let conn: DenoConn;
          try {
            conn = await listener.accept();
          } catch {
            break;
          }
          conn.setNoDelay?.(true);
          const c = new DenoTcpConn(conn, h);
          h.open(c);
          void c.run();
        }
      })();
      return {
        stop: () => {
          stopped = true;
          listener.close();
        },
        port: listener.addr.port,
      };
    }
  } catch (e) {
    const err = e as { code?: string; name?: string; message?: string };
    if (
      err.code === "EADDRINUSE" || err.name === "AddrInUse" ||
      /address.*in use|EADDRINUSE/i.test(err.message ?? "")
    ) {
      throw new PortInUseError(`port ${port} on ${host} is already in use`);
    }
    throw e;
  }
  throw new Error("dkv needs Bun or Deno to run");
}
