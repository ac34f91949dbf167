/**
 * Mutual TLS under Deno. `Deno.serve` cannot request client certificates, but Deno's `node:https`
 * server honours `requestCert` and `rejectUnauthorized`, so a member started with
 * --tls-client-auth under Deno serves through it: each request is read (up to `maxBodyBytes`,
 * beyond which it answers 413 as Bun does), handed to the same fetch-style handler as a web
 * Request, and the Response written back. Only for that case: everywhere else the runtime's own
 * server is faster.
 */
import { createServer, type Server as HttpsServer } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Handler, Server, TlsMaterial } from "./index.ts";
import { concatBytes } from "../core/bytes.ts";

export interface NodeHttpsOptions {
  host: string;
  port: number;
  maxBodyBytes: number;
  tls: TlsMaterial;
  /** The listen failed (port taken): listening is asynchronous here, so it is reported late. */
  onListenError: (message: string) => void;
}

export function serveNodeHttps(handler: Handler, opts: NodeHttpsOptions): Server {
  const server: HttpsServer = createServer({
    cert: opts.tls.cert,
    key: opts.tls.key,
    ...(opts.tls.ca === undefined ? {} : { ca: opts.tls.ca }),
    requestCert: true,
    rejectUnauthorized: true,
  }, (req, res) => {
    void answer(handler, req, res, opts).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  server.on("error", (e: Error & { code?: string }) => {
    opts.onListenError(
      e.code === "EADDRINUSE"
        ? `port ${opts.port} on ${opts.host} is already in use`
        : (e.message ?? String(e)).split("\n")[0]!,
    );
  });
  server.listen(opts.port, opts.host);
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}

async function answer(
  handler: Handler,
  req: IncomingMessage,
  res: ServerResponse,
  opts: NodeHttpsOptions,
): Promise<void> {
  const method = req.method ?? "GET";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > opts.maxBodyBytes) {
      res.writeHead(413, { connection: "close" });
      res.end();
      req.destroy();
      return;
    }
    chunks.push(chunk);
  }
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  const hasBody = method !== "GET" && method !== "HEAD";
  const body = hasBody ? concatBytes(chunks, total) as Uint8Array<ArrayBuffer> : undefined;
  let request: Request;
  try {
    const url = `https://${req.headers.host ?? `${opts.host}:${opts.port}`}${req.url ?? "/"}`;
    request = new Request(url, { method, headers, body });
  } catch {
    // A Host header or target that makes no URL: Bun.serve answers 400 for those too.
    res.writeHead(400, { connection: "close" });
    res.end();
    return;
  }
  const response = await handler(request);
  const out: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    const had = out[name];
    out[name] = had === undefined ? value : [...(Array.isArray(had) ? had : [had]), value];
  });
  const bytes = method === "HEAD" ? undefined : new Uint8Array(await response.arrayBuffer());
  res.writeHead(response.status, out);
  res.end(bytes);
}
