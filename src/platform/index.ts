/**
 * Everything runtime-specific (Bun or Deno) lives here: serving HTTP(S), the fetch peers use,
 * reading files, runtime facts. The rest of the source only sees `serve()`, `peerFetch()`,
 * `readTextFile()` and plain web types.
 */
import { readFileSync, statSync } from "node:fs";
import { serveNodeHttps } from "./node-https.ts";

export type Handler = (req: Request) => Response | Promise<Response>;

export interface Server {
  stop(): Promise<void>;
}

export class PortInUseError extends Error {}

/** TLS for the server and for calls to peers: PEM text, read from the --tls-* files. */
export interface TlsMaterial {
  /** This member's certificate (chain): served, and shown to peers as a client certificate. */
  readonly cert: string;
  readonly key: string;
  /** The CA that peers' certificates must chain to; without it, the runtime's default roots. */
  readonly ca?: string;
  /** The server requires a client certificate signed by `ca` (mutual TLS). */
  readonly clientAuth: boolean;
}

interface DenoLike {
  version: { deno: string };
  serve(
    options: { hostname: string; port: number; onListen?: () => void; cert?: string; key?: string },
    handler: Handler,
  ): { shutdown(): Promise<void> };
  createHttpClient(
    options: { caCerts?: string[]; cert?: string; key?: string },
  ): { close(): void };
}

const g = globalThis as unknown as { Bun?: typeof Bun; Deno?: DenoLike };

export function runtime(): { name: "bun" | "deno" | "unknown"; version: string } {
  if (g.Bun) return { name: "bun", version: g.Bun.version };
  if (g.Deno) return { name: "deno", version: g.Deno.version.deno };
  return { name: "unknown", version: "" };
}

export interface ServeOptions {
  host: string;
  port: number;
  /** Largest request body the server reads; beyond it the runtime answers 413 itself. */
  maxBodyBytes: number;
  /** Serve HTTPS (and with `clientAuth`, require client certificates). */
  tls?: TlsMaterial;
  /**
   * A listen that fails after serve() returned (mutual TLS under Deno listens asynchronously):
   * the one line to print. Otherwise serve() throws.
   */
  onListenError?: (message: string) => void;
  /**
   * A connection that sends nothing for this long is closed (Bun's idleTimeout, in whole
   * seconds; Deno.serve has no such setting and ignores it).
   */
  idleTimeoutMs: number;
}

function internalError(): Response {
  return Response.json({
    status: "FAILED",
    error: { errorMessage: "internal error", errorSystemCode: 500 },
  }, { status: 500 });
}

/** Listen on host:port. Throws PortInUseError when the port is taken. */
export function serve(handler: Handler, opts: ServeOptions): Server {
  try {
    if (g.Bun) {
      const tls = opts.tls;
      const s = g.Bun.serve({
        hostname: opts.host,
        port: opts.port,
        fetch: handler,
        maxRequestBodySize: opts.maxBodyBytes,
        idleTimeout: Math.min(255, Math.ceil(opts.idleTimeoutMs / 1000)),
        // Anything the handler did not turn into an answer: FAILED JSON, never Bun's HTML page
        // with a stack trace.
        error: () => internalError(),
        ...(tls === undefined ? {} : {
          tls: {
            cert: tls.cert,
            key: tls.key,
            ...(tls.ca === undefined ? {} : { ca: tls.ca }),
            // Mutual TLS: the handshake fails without a client certificate signed by `ca`.
            ...(tls.clientAuth ? { requestCert: true, rejectUnauthorized: true } : {}),
          },
        }),
      });
      return { stop: () => s.stop(true) };
    }
    if (g.Deno) {
      if (opts.tls?.clientAuth === true) {
        // Deno.serve cannot require client certificates; Deno's node:https can.
        return serveNodeHttps(handler, {
          host: opts.host,
          port: opts.port,
          maxBodyBytes: opts.maxBodyBytes,
          tls: opts.tls,
          onListenError: opts.onListenError ?? ((m) => {
            throw new Error(m);
          }),
        });
      }
      const tls = opts.tls === undefined ? {} : { cert: opts.tls.cert, key: opts.tls.key };
      const s = g.Deno.serve(
        { hostname: opts.host, port: opts.port, onListen: () => {}, ...tls },
        handler,
      );
      return { stop: () => s.shutdown() };
    }
  } catch (e) {
    const err = e as { code?: string; name?: string; message?: string };
    if (
      err.code === "EADDRINUSE" || err.name === "AddrInUse" ||
      /address.*in use|EADDRINUSE/i.test(err.message ?? "")
    ) {
      throw new PortInUseError(`port ${opts.port} on ${opts.host} is already in use`);
    }
    throw e;
  }
  throw new Error("dkv needs Bun or Deno to run");
}
export type FetchFn = (url: string, init: RequestInit) => Promise<Response>;

/**
 * The fetch peers call each other with. With `tls`, https URLs are verified against `tls.ca` (or
 * the default roots) and this member shows its own certificate, for servers that require one.
 * Bun takes these per request (`tls`), Deno through one `Deno.createHttpClient` (`client`).
 */
export function peerFetch(tls?: TlsMaterial): FetchFn {
  if (tls === undefined) return (url, init) => fetch(url, init);
  const ca = tls.ca === undefined ? {} : { ca: tls.ca };
  if (g.Bun) {
    const opts = { tls: { cert: tls.cert, key: tls.key, ...ca } };
    return (url, init) => fetch(url, { ...init, ...opts } as RequestInit);
  }
  if (g.Deno) {
    const client = g.Deno.createHttpClient({
      cert: tls.cert,
      key: tls.key,
      ...(tls.ca === undefined ? {} : { caCerts: [tls.ca] }),
    });
    return (url, init) => fetch(url, { ...init, client } as RequestInit);
  }
  throw new Error("dkv needs Bun or Deno to run");
}

/**
 * A small text file (UTF-8), at most `maxBytes`. Throws an Error with a one-line message when it
 * cannot be read or is too large (node:fs, the same under Bun and Deno).
 */
export function readTextFile(path: string, maxBytes: number): string {
  try {
    const size = statSync(path).size;
    if (size > maxBytes) throw new Error(`${path} is ${size} bytes; the limit is ${maxBytes}`);
    return readFileSync(path, "utf8");
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (err.code === "ENOENT") throw new Error(`${path}: no such file`);
    if (err.code === "EACCES" || err.code === "EPERM") {
      throw new Error(`${path}: permission denied`);
    }
    if (err.code === "EISDIR") throw new Error(`${path}: is a directory`);
    throw new Error((err.message ?? String(e)).split("\n")[0]);
  }
}

export { realScheduler } from "./scheduler.ts";
