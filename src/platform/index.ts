/**
 * Everything runtime-specific (Bun or Deno) lives here: serving HTTP, reading files, runtime
 * facts. The rest of the source only sees `serve()`, `readTextFile()` and plain web types.
 */
import { readFileSync, statSync } from "node:fs";

export type Handler = (req: Request) => Response | Promise<Response>;

export interface Server {
  stop(): Promise<void>;
}

export class PortInUseError extends Error {}

interface DenoLike {
  version: { deno: string };
  serve(
    options: { hostname: string; port: number; onListen?: () => void },
    handler: Handler,
  ): { shutdown(): Promise<void> };
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
  /**
   * A connection that sends nothing for this long is closed (Bun's idleTimeout, in whole
   * seconds; Deno.serve has no such setting and ignores it).
   */
  idleTimeoutMs: number;
}

/** Listen on host:port. Throws PortInUseError when the port is taken. */
export function serve(handler: Handler, opts: ServeOptions): Server {
  try {
    if (g.Bun) {
      const s = g.Bun.serve({
        hostname: opts.host,
        port: opts.port,
        fetch: handler,
        maxRequestBodySize: opts.maxBodyBytes,
        idleTimeout: Math.min(255, Math.ceil(opts.idleTimeoutMs / 1000)),
      });
      return { stop: () => s.stop(true) };
    }
    if (g.Deno) {
      const s = g.Deno.serve({ hostname: opts.host, port: opts.port, onListen: () => {} }, handler);
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
