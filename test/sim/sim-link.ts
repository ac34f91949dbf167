/**
 * The TCP peer link's frames as the simulator's transport (`--transport link`): every peer call
 * but /health is encoded as the link encodes it (src/transport/peer-tcp.ts: encodeCall,
 * linkMethods), carried as one message of the simulated network (its delays, drops, duplicates
 * and cuts, as an HTTP call's), answered by the very dispatch a link connection uses
 * (src/http/peer-tcp-server.ts: answerFrame, the same routes, schemas and refusals), and read
 * back as the link reads an answer (answerOf). What the simulator does not model is the
 * connection itself: dialling, the hellos, one ordered stream per peer (messages here may come
 * in any order, a superset of what one stream delivers) and the fallback to HTTP; those are
 * tested over real sockets (test/http/peer-tcp.test.ts). The sender a call is taken from is the
 * one the network knows, as a link's signed hello tells the receiver.
 * Not a test file itself (no `.test.` in the name).
 */
import { FrameReader } from "../../src/core/peer-frame.ts";
import { type Scheduler, timeoutSignal } from "../../src/core/scheduler.ts";
import { answerFrame, type LinkCalls } from "../../src/http/peer-tcp-server.ts";
import type { Logger } from "../../src/log.ts";
import {
  type FetchFn,
  type InProcessServer,
  type PeerClient,
  PeerError,
} from "../../src/transport/index.ts";
import { answerOf, encodeCall, linkMethods, type LinkSend } from "../../src/transport/peer-tcp.ts";
import { transportWords } from "../../src/transport/transport-words.ts";

/** The query that marks a simulated link frame (the path stays the route's, for the network). */
const LINK_MARK = "link";
const FROM_HEADER = "x-sim-link-from";
const FRAME_BYTES_MAX = 64 * 1024 * 1024;

/**
 * `http` with every call but health to a member with a link (`hasLink`: a node; an orchestrator
 * has none and is called over HTTP, as in a real cluster) sent as link frames through `fetchFn`,
 * from `self`.
 */
export function simLinkPeers(
  http: PeerClient,
  fetchFn: FetchFn,
  sched: Scheduler,
  self: string,
  hasLink: (address: string) => boolean,
): PeerClient {
  let nextId = 1;
  const send: LinkSend = async (address, kind, path, body, timeoutMs, schema, viaHttp) => {
    if (!hasLink(address)) return viaHttp();
    const id = nextId;
    nextId = nextId >= 0xffff_fffe ? 1 : nextId + 1;
    const frame = encodeCall(id, kind, body);
    const timer = timeoutSignal(sched, timeoutMs);
    let bytes: Uint8Array;
    try {
      const res = await fetchFn(`http://${address}${path}?${LINK_MARK}`, {
        method: "POST",
        body: frame as Uint8Array<ArrayBuffer>,
        headers: { [FROM_HEADER]: self },
        signal: timer.signal,
      });
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      throw new PeerError(address, `${transportWords(e, timeoutMs)} (link)`);
    } finally {
      timer.done();
    }
    const frames = new FrameReader(FRAME_BYTES_MAX).push(bytes);
    if (typeof frames === "string" || frames.length !== 1 || frames[0]!.id !== id) {
      throw new PeerError(address, `${path}: not one answer frame to call ${id}`);
    }
    return answerOf(address, frames[0]!, path, schema);
  };
  return { ...http, ...linkMethods(http, send) };
}

/**
 * `app` (a member's HTTP routes) with the simulated link frames answered by the link's dispatch
 * on `calls` (undefined, an orchestrator: a frame is refused as a connection to a member without
 * a link would be).
 */
export function simLinkServer(
  app: InProcessServer,
  calls: LinkCalls | undefined,
  log: Logger,
): InProcessServer {
  return {
    fetch: async (req) => {
      if (!new URL(req.url).searchParams.has(LINK_MARK)) return app.fetch(req);
      if (calls === undefined) return new Response("no link here", { status: 502 });
      const frames = new FrameReader(FRAME_BYTES_MAX).push(new Uint8Array(await req.arrayBuffer()));
      if (typeof frames === "string" || frames.length !== 1) {
        return new Response("not one frame", { status: 400 });
      }
      const sender = req.headers.get(FROM_HEADER) ?? undefined;
      const answer = await answerFrame(calls, frames[0]!, sender, log);
      return new Response(answer as Uint8Array<ArrayBuffer>, {
        headers: { "content-type": "application/octet-stream" },
      });
    },
  };
}
