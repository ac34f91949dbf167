/**
 * The HTTP fuzzer (issue 9, part 7): seeded malformed and hostile requests against a real
 * cluster, over raw TCP (node:net, so the HTTP itself can be broken) and fetch. Shared by
 * test/e2e/fuzz.test.ts (a bounded run under `npm test`) and scripts/fuzz.ts (longer runs).
 *
 * Request i is drawn from its own stream derived from (seed, i), so a request is the same
 * whatever the concurrency; `describe(i)` of a failure names it, and `--seed S --only i` replays
 * it alone. Every key the fuzzer may write or delete starts with `fz` (dot segments included),
 * so the keys written before the run (`keep-*`) can only change through a bug.
 *
 * Verdict per answer: no status of 500 or above, except a 503 FAILED JSON from `/kv/{key}` or
 * `/all-nodes/{key}` (the API's documented "cannot reach enough replicas" answer). Unsigned,
 * foreign-secret and replayed internal calls sent with fetch must be 401. A connection the
 * server closes without answering, or a request it waits on (a body shorter than its length)
 * is counted, never a failure.
 */
import { Buffer } from "node:buffer";
import { connect } from "node:net";
import { readFileSync } from "node:fs";
import { AUTH_HEADER, ClusterAuth } from "../../src/security/cluster-auth.ts";
import { type Rng, rng } from "../unit/seeded.ts";

export interface Target {
  readonly name: string;
  /** host:port */
  readonly address: string;
  readonly role: "orchestrator" | "node";
}

export interface FuzzOptions {
  readonly seed: number;
  readonly requests: number;
  readonly targets: readonly Target[];
  /** The cluster's secret (signed hostile calls) and another one (foreign signatures). */
  readonly secret: string;
  readonly otherSecret: string;
  /** Requests in flight at once. */
  readonly concurrency?: number;
  /** Run only these request indexes (replay). */
  readonly only?: readonly number[];
  /** Upper bound on the bytes sent in all, so oversize requests stay bounded. */
  readonly bytesMax?: number;
  readonly onProgress?: (done: number) => void;
}

/** One request: what to send, and how to judge its answer. */
interface Spec {
  readonly label: string;
  readonly target: Target;
  /** Raw bytes over TCP, or a fetch call. */
  readonly raw?: Uint8Array;
  readonly fetch?: FetchSpec;
  /** The path, for the 503 rule. */
  readonly path: string;
  /** The statuses that are right (besides "no 5xx"), if the fuzzer knows them. */
  readonly expect?: readonly number[];
  /** Raw requests that leave the server waiting: a short read timeout, no answer expected. */
  readonly incomplete?: boolean;
}

interface FetchSpec {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: Uint8Array;
  /** Sign the body with this signer at send time (time and nonce are current then). */
  readonly sign?: "secret" | "other";
  /** Send the same signed bytes twice; the second must be 401. */
  readonly replay?: boolean;
}

export interface Finding {
  readonly index: number;
  readonly label: string;
  readonly target: string;
  readonly status: number | string;
  readonly why: string;
  readonly request: string;
  readonly answer: string;
}

export interface FuzzReport {
  readonly seed: number;
  readonly sent: number;
  readonly bytesSent: number;
  readonly ms: number;
  /** Status (or `closed` / `waiting` / `error:...`) → count. */
  readonly statuses: Record<string, number>;
  /** Label (kind of request) → count. */
  readonly kinds: Record<string, number>;
  readonly findings: Finding[];
  /** 503 answers by the start of their errorMessage. */
  readonly unavailable: Record<string, number>;
  /** The slowest requests (index, kind, ms to the end of the answer): printed, never asserted. */
  readonly slowest: { index: number; label: string; ms: number }[];
}

const enc = new TextEncoder();
const NODE_ROUTES = [
  "kv/write",
  "kv/read",
  "hints",
  "ae/digests",
  "ae/buckets",
  "ae/versions",
  "rebalance/done",
  "gossip",
  "status",
];

/** A stream for request i of a seed (mulberry32 of a mix of both). */
function streamFor(seed: number, i: number): Rng {
  let h = (seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return rng((h ^ (h >>> 16)) >>> 0);
}

// ---------- building blocks ----------

const BAD_PCT = [
  "%",
  "%2",
  "%zz",
  "%G0",
  "%C3%28",
  "%ff%fe",
  "%c0%af",
  "%e2%82",
  "%ed%a0%80",
  "%f4%90%80%80",
  "%00",
  "%0d%0a",
  "%25",
  "%2F",
  "%u0041",
  "%%",
];
const RAW_BYTES = [[0x80], [0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0x00], [0x7f], [0xf0, 0x9f]];
const UNICODE = ["é", "日本", "🔑", "\u200b", "\u202e", "Ω", "ß", "🏳️‍🌈"];
const ODD_METHODS = [
  "FOO",
  "get",
  "PATCH",
  "OPTIONS",
  "TRACE",
  "CONNECT",
  "HEAD",
  "PROPFIND",
  "M-SEARCH",
  "G\u00e9T",
  "GET GET",
  "",
  "X".repeat(300),
  "DELETE\t",
];
const PATHS = [
  "/health",
  "/all-nodes",
  "/all-nodes/fzk",
  "/kv/all-data",
  "/cluster/status",
  "/kv/fzk",
  "/internal/v1/status",
  "/internal/v1/kv/read",
  "/nope",
  "/",
];

function fzKey(r: Rng): string {
  const parts = ["fz", String(r.int(1000))];
  const n = r.int(4);
  for (let j = 0; j < n; j++) {
    switch (r.int(5)) {
      case 0:
        parts.push(r.pick(UNICODE));
        break;
      case 1:
        parts.push("/");
        break;
      case 2:
        parts.push(" ");
        break;
      default:
        parts.push(String.fromCharCode(97 + r.int(26)));
    }
  }
  return parts.join("");
}

/** A key path segment, percent-encoded or junk; always starts with `fz`. */
function keySegment(r: Rng): string {
  switch (r.int(6)) {
    case 0:
      return encodeURIComponent(fzKey(r));
    case 1:
      return `fz${r.pick(BAD_PCT)}${r.int(10)}`;
    case 2:
      return `fz${Array.from({ length: 1 + r.int(4) }, () => r.pick(BAD_PCT)).join("")}`;
    case 3:
      return `fz${r.int(100)}/../fz${r.int(100)}`; // dot segments stay inside fz keys
    case 4:
      return `fz${"x".repeat(r.pick([1020, 1022, 1025, 5000]))}`;
    default:
      return `fz${r.int(100)}%2e%2e%2Ffz`;
  }
}

function concat(...parts: (string | Uint8Array | number[])[]): Uint8Array {
  const bufs = parts.map((p) =>
    typeof p === "string" ? enc.encode(p) : p instanceof Uint8Array ? p : new Uint8Array(p)
  );
  const out = new Uint8Array(bufs.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of bufs) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

function randomBytes(r: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r.int(256);
  return out;
}

/** A request line, headers and body as raw bytes (no Content-Length unless given). */
function rawRequest(
  method: string,
  target: string | Uint8Array,
  host: string,
  headers: readonly string[],
  body: Uint8Array | string = "",
  version = "HTTP/1.1",
): Uint8Array {
  const head = headers.length > 0 ? `${headers.join("\r\n")}\r\n` : "";
  return concat(`${method} `, target, ` ${version}\r\nHost: ${host}\r\n${head}\r\n`, body);
}

// ---------- hostile JSON ----------

function deep(n: number, open: string, close: string, inner = "1"): string {
  return open.repeat(n) + inner + close.repeat(n);
}

const POISON: readonly unknown[] = [
  null,
  true,
  -1,
  -0,
  1.5,
  2 ** 53 + 2,
  1e308,
  "1",
  "",
  [],
  {},
  [1, 2, 3],
  { __proto__: { polluted: 1 } },
  "x".repeat(300),
];

/** A valid body for an internal route (only ever touching `fz` keys), as an object. */
function validBody(route: string, to: string, r: Rng): Record<string, unknown> {
  const rec = () => ({ k: fzKey(r), v: `fuzz-${r.int(1e6)}`, t: Date.now(), c: r.int(3), n: "fz" });
  switch (route) {
    case "kv/write":
      return { to, records: [rec()] };
    case "kv/read":
      return { to, keys: [fzKey(r)] };
    case "hints":
      return { target: to, records: [rec()] };
    case "ae/digests":
      return { partitions: [r.int(300)] };
    case "ae/buckets":
      return { partition: r.int(300) };
    case "ae/versions":
      return { partition: r.int(300), buckets: [r.int(70)], limit: 1 + r.int(100) };
    case "rebalance/done":
      return { partition: 100_000 + r.int(1e6), from: "fz" };
    default:
      return gossipBody(r, "fz-forger:1");
  }
}

/** Forged gossip: a push-pull declaring a member LEFT at a huge incarnation, or a ping. */
function gossipBody(r: Rng, from: string): Record<string, unknown> {
  const member = {
    id: "fz-victim",
    address: "127.0.0.1:1",
    role: r.pick(["node", "orchestrator"]),
    incarnation: r.pick([0, 1, Number.MAX_SAFE_INTEGER]),
    state: r.pick(["UP", "LEFT", "DOWN", "SUSPECT"]),
    inRing: true,
  };
  const msg = r.int(2) === 0
    ? {
      type: "push-pull",
      from,
      fromAddress: "127.0.0.1:1",
      reply: r.int(2) === 0,
      members: [member],
    }
    : { type: "ping", from, fromAddress: "127.0.0.1:1", seq: r.int(100), target: "x", updates: [] };
  return { msg, cluster: { replicationFactor: 1, partitions: 7, source: "orchestrator" } };
}

/** A route's body made hostile: poisoned fields, prototype keys, deep nesting, junk. */
function hostileJson(route: string, to: string, r: Rng): string {
  switch (r.int(8)) {
    case 0:
      return deep(r.pick([100, 10_000, 100_000]), "[", "]");
    case 1:
      return deep(r.pick([100, 10_000, 50_000]), '{"a":', "}");
    case 2:
      return `{"__proto__":{"to":"${to}","records":[],"polluted":true},"constructor":{"prototype":{"x":1}}}`;
    case 3:
      return r.pick(["", "null", "[]", "1e99999", "-0", '"str"', "{", '{"a":1,}', "\u0000", "NaN"]);
    case 4: {
      // One field of a valid body poisoned (nested fields too).
      const body = validBody(route, to, r);
      const keys = Object.keys(body);
      const k = r.pick(keys);
      const v = body[k];
      if (Array.isArray(v) && v.length > 0 && typeof v[0] === "object" && r.int(2) === 0) {
        const inner = { ...(v[0] as Record<string, unknown>) };
        inner[r.pick(Object.keys(inner))] = r.pick(POISON);
        body[k] = [inner];
      } else body[k] = r.pick(POISON);
      return JSON.stringify(body);
    }
    case 5: {
      // Huge numbers as raw JSON text, beyond what JSON.stringify writes.
      const n = r.pick(["1e400", "-1e400", "123456789012345678901234567890", "0.0000001", "1E2"]);
      return JSON.stringify(validBody(route, to, r)).replace(/\d+/, n);
    }
    case 6: {
      // A list far longer than allowed, or repeated keys.
      const body = validBody(route, to, r);
      if (route === "kv/read") body.keys = Array.from({ length: 2 }, () => "fzdup");
      else if (route === "ae/digests") body.partitions = Array.from({ length: 70_000 }, () => 0);
      else body.extra = Array.from({ length: 20_000 }, (_, j) => j);
      return JSON.stringify(body);
    }
    default:
      return `{"__proto__":null,"toString":1,"valueOf":"x","hasOwnProperty":[],${
        JSON.stringify(validBody(route, to, r)).slice(1)
      }`;
  }
}

// ---------- the generators ----------

type Gen = (r: Rng, t: Target, targets: readonly Target[]) => Spec;

const gens: readonly [weight: number, name: string, gen: Gen][] = [
  [10, "raw-key-encoding", (r, t) => {
    const method = r.pick(["GET", "PUT", "POST", "DELETE"]);
    const seg = r.int(3) === 0
      ? concat("fz", r.pick(RAW_BYTES), r.pick(RAW_BYTES))
      : enc.encode(keySegment(r));
    const path = concat(
      "/kv/",
      seg,
      r.int(4) === 0 ? `?consistency=${r.pick(["one", "all", "%zz", "x"])}` : "",
    );
    const body = method === "GET" || method === "DELETE" ? "" : r.pick(["v", "", "é"]);
    const headers = body ? [`Content-Length: ${enc.encode(body).length}`] : [];
    return {
      label: "raw-key-encoding",
      target: t,
      path: "/kv/",
      raw: rawRequest(method, path, t.address, [...headers, "Connection: close"], body),
    };
  }],
  [6, "raw-method", (r, t) => {
    const method = r.pick(ODD_METHODS);
    const path = r.pick(PATHS);
    return {
      label: "raw-method",
      target: t,
      path,
      raw: rawRequest(method, path, t.address, ["Connection: close"]),
    };
  }],
  [6, "raw-target", (_r, t) => {
    const r = _r;
    const target = r.pick([
      "*",
      "",
      "kv/fzx",
      "//kv/fzx",
      "http://evil.example/kv/fzx",
      `http://${t.address}/kv/fzx`,
      "/%69nternal/v1/status",
      "/internal/v1/../../kv/fzx",
      "/kv/fz1/./fz2",
      "/kv/fz1/%2e/fz2",
      "/kv/fz1#frag",
      "/kv/fz1?#",
      "/kv/fz1?consistency=one&consistency=all",
      "/?",
      "/kv/fz" + "%41".repeat(2000),
      "/" + "a/".repeat(3000),
      "/kv/fz\ty",
      "/all-nodes/" + r.pick(BAD_PCT),
      "/all-nodes/%2e%2e",
      "/cluster/status?x=%zz",
    ]);
    return {
      label: "raw-target",
      target: t,
      // Absolute-form and dot-segment targets reach the key routes too.
      path: target.includes("/kv/") || target.includes("/all-nodes/") ? "/kv/" : target,
      raw: rawRequest(r.pick(["GET", "DELETE"]), target, t.address, ["Connection: close"]),
    };
  }],
  [5, "raw-version-host", (r, t) => {
    const version = r.pick([
      "HTTP/1.0",
      "HTTP/2.0",
      "HTTP/0.9",
      "HTTP/1.2",
      "HTTP/1.1x",
      "http/1.1",
      "",
    ]);
    const host = r.pick([
      t.address,
      "",
      "a b",
      "[::1",
      "evil.example",
      "%00",
      "x".repeat(3000),
      "[zz]:1",
    ]);
    const dupHost = r.int(3) === 0 ? [`Host: other.example`] : [];
    const path = r.pick([
      "/kv/fzh",
      "/kv/fz/./h",
      "/health",
      "/all-nodes/fz/.",
      "/kv/fz?consistency=one",
    ]);
    const raw = version === ""
      ? enc.encode(`GET ${path}\r\n\r\n`)
      : rawRequest("GET", path, host, [...dupHost, "Connection: close"], "", version);
    return {
      label: "raw-version-host",
      target: t,
      path: path.startsWith("/health") ? path : "/kv/",
      raw,
    };
  }],
  [10, "raw-headers", (r, t) => {
    const path = `/kv/fzh${r.int(50)}`;
    const body = "value";
    const variants: [string[], string | Uint8Array, boolean][] = [
      [["Content-Length: 5", "Content-Length: 5"], body, false],
      [["Content-Length: 5", "Content-Length: 6"], body, false],
      [["Content-Length: 5, 5"], body, false],
      [["Content-Length: -1"], body, false],
      [["Content-Length: abc"], body, false],
      [["Content-Length: 99999999999999999999999"], body, true],
      [["Content-Length: 0x5"], body, false],
      [["Content-Length: +5"], body, false],
      [["Content-Length:  5 "], body, false],
      [["Content-Length: 50"], body, true], // shorter than announced: the server waits
      [["Content-Length: 20000000"], body, true], // past every body limit, announced only
      [["Content-Length: 2"], body, false], // longer: the rest is a bad next request
      [["Content-Length: 5", "Transfer-Encoding: chunked"], "5\r\nvalue\r\n0\r\n\r\n", false],
      [["Transfer-Encoding: gzip, chunked"], "5\r\nvalue\r\n0\r\n\r\n", false],
      [["Transfer-Encoding: identity"], body, false],
      [["NoColonHeader"], body, false],
      [["X-A: 1", " folded continuation"], body, false],
      [["X Bad Name: 1"], body, false],
      [[": empty-name"], body, false],
      [["X-Nul: a\u0000b"], body, false],
      [["X-Long: " + "a".repeat(r.pick([8000, 70_000, 300_000]))], body, false],
      [Array.from({ length: r.pick([100, 500, 2000]) }, (_, j) => `X-H${j}: ${j}`), body, false],
      [["Content-Type: application/json; charset=utf-16"], body, false],
      [["Expect: 100-continue", "Content-Length: 5"], body, false],
      [["Connection: keep-alive, Upgrade", "Upgrade: websocket"], body, false],
      [[`${AUTH_HEADER}: v1 x 1 2 3`], body, false],
    ];
    const [headers, b, incomplete] = r.pick(variants);
    const withLength = headers.some((h) => /content-length|transfer-encoding/i.test(h))
      ? headers
      : [...headers, `Content-Length: ${typeof b === "string" ? enc.encode(b).length : b.length}`];
    return {
      label: "raw-headers",
      target: t,
      path: "/kv/",
      incomplete,
      raw: rawRequest(r.pick(["PUT", "POST"]), path, t.address, [
        ...withLength,
        "Connection: close",
      ], b),
    };
  }],
  [8, "raw-chunked", (r, t) => {
    const path = `/kv/fzc${r.int(50)}`;
    const variants: [string, boolean][] = [
      ["5\r\nhello\r\n0\r\n\r\n", false],
      ["5\r\nhel", true],
      ["3\r\nhello\r\n0\r\n\r\n", false],
      ["zz\r\nhello\r\n0\r\n\r\n", false],
      ["-5\r\nhello\r\n0\r\n\r\n", false],
      ["5;ext=1\r\nhello\r\n0\r\n\r\n", false],
      ["5\r\nhello\r\n0\r\nTrailer: x\r\n\r\n", false],
      ["FFFFFFFFFFFFFFFF\r\nhello\r\n", true],
      ["100000000\r\nhello\r\n", true],
      ["5\nhello\n0\n\n", false],
      ["0\r\n\r\n", false],
      ["5\r\nhello\r\n", true],
      [Array.from({ length: 200 }, () => "1\r\nx\r\n").join("") + "0\r\n\r\n", false],
      ["5\r\n\xff\xfe\xc3\x28a\r\n0\r\n\r\n", false],
    ];
    const [body, incomplete] = r.pick(variants);
    const bytes = Buffer.from(body, "latin1");
    return {
      label: "raw-chunked",
      target: t,
      path: "/kv/",
      incomplete,
      raw: rawRequest(r.pick(["PUT", "POST"]), path, t.address, [
        "Transfer-Encoding: chunked",
        "Connection: close",
      ], bytes),
    };
  }],
  [4, "raw-garbage", (r, t) => {
    const raw = r.pick([
      () => randomBytes(r, 1 + r.int(2000)),
      () => new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]),
      () => enc.encode("\r\n\r\n\r\n"),
      () => enc.encode("GET /health HTTP/1.1\r\n"),
      () => enc.encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
      () => concat(`GET /health HTTP/1.1\r\nHost: ${t.address}\r\n\r\n`, randomBytes(r, 100)),
      () =>
        enc.encode(
          Array.from({ length: 5 }, (_, j) =>
            `GET /kv/fzp${j} HTTP/1.1\r\nHost: ${t.address}\r\n\r\n`)
            .join("") + "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
        ),
    ])();
    return { label: "raw-garbage", target: t, path: "/kv/", raw, incomplete: true };
  }],
  [14, "fetch-kv", (r, t) => {
    const key = r.int(4) === 0
      ? `fz${"k".repeat(r.pick([1022, 1023, 1024, 4000, 70_000]))}`
      : fzKey(r);
    const method = r.pick(["GET", "PUT", "POST", "DELETE", "PUT", "POST"]);
    const consistency = r.int(3) === 0
      ? `?consistency=${
        r.pick(["one", "quorum", "all", "any", "", "ALL", "two", "%zz", "one&consistency=all"])
      }`
      : "";
    let body: Uint8Array | undefined;
    if (method === "PUT" || method === "POST") {
      body = r.pick([
        () => enc.encode(`v${r.int(1000)}`),
        () => new Uint8Array(0),
        () => new Uint8Array([0xff, 0xfe, 0xc3, 0x28]),
        () => enc.encode("é".repeat(r.int(100))),
        () => new Uint8Array(r.pick([1024 * 1024, 1024 * 1024 + 1, 1536 * 1024])).fill(97),
      ])();
    }
    return {
      label: "fetch-kv",
      target: t,
      path: "/kv/",
      fetch: { method, path: `/kv/${encodeURIComponent(key)}${consistency}`, headers: {}, body },
    };
  }],
  [5, "fetch-public", (r, t) => {
    const path = r.pick([
      "/health",
      "/all-nodes",
      `/all-nodes/${keySegment(r)}`,
      "/all-nodes/",
      "/kv/all-data",
      "/kv/all-data?consistency=x",
      "/cluster/status",
      "/kv/",
      "/kv",
      "/admin/leave",
    ]);
    // Never POST /admin/leave: a member leaving is what that route is for, not a bug.
    const method = path === "/admin/leave"
      ? r.pick(["GET", "PUT", "DELETE"])
      : r.pick(["GET", "GET", "POST", "PATCH"]);
    return {
      label: "fetch-public",
      target: t,
      path: path.startsWith("/all-nodes/") ? "/kv/" : path,
      fetch: {
        method,
        path,
        headers: { Origin: "http://evil.example", "Content-Type": "text/plain" },
        body: method === "GET" ? undefined : enc.encode("x"),
      },
    };
  }],
  [10, "internal-unsigned", (r, t) => {
    const route = r.pick(NODE_ROUTES);
    const header = r.pick([
      undefined,
      "",
      "v1",
      "v2 a 1 0123456789abcdef.1 " + "A".repeat(43),
      `v2 fz ${Date.now()} 0123456789abcdef.1 ${"A".repeat(43)}`,
      `v2 %zz ${Date.now()} 0123456789abcdef.1 ${"A".repeat(43)}`,
      `v2 fz 1 0123456789abcdef.1 ${"A".repeat(43)}`,
      `v2 fz ${Date.now()} 0123456789abcdef.99999999999999999 ${"A".repeat(43)}`,
      "v2 " + "x ".repeat(2000),
    ]);
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (header !== undefined) headers[AUTH_HEADER] = header;
    const method = route === "status" ? "GET" : r.pick(["POST", "POST", "PUT", "GET"]);
    // Rarely a body past the internal body limit (7 × (1 MiB + 1 MiB) + 1 MiB = 15 MiB).
    const huge = method !== "GET" && r.int(100) === 0;
    return {
      label: "internal-unsigned",
      target: t,
      path: `/internal/v1/${route}`,
      // A header of the right form within the time window passes the first check, and the MAC
      // covers the body's hash, so the body is read (within the limit) before the MAC is
      // checked: a body over the limit is then a 413, by design (security.md).
      expect: huge ? [401, 413] : [401],
      fetch: {
        method,
        path: `/internal/v1/${route}`,
        headers,
        body: method === "GET"
          ? undefined
          : huge
          ? new Uint8Array(16 * 1024 * 1024).fill(0x5b)
          : enc.encode(hostileJson(route, t.address, r)),
      },
    };
  }],
  [4, "internal-foreign", (r, t) => {
    const route = r.pick(NODE_ROUTES);
    return {
      label: "internal-foreign",
      target: t,
      path: `/internal/v1/${route}`,
      expect: [401],
      fetch: {
        method: "POST",
        path: `/internal/v1/${route}`,
        headers: { "content-type": "application/json" },
        body: enc.encode(JSON.stringify(validBody(route, t.address, r))),
        sign: "other",
      },
    };
  }],
  [14, "internal-signed-hostile", (r, t) => {
    const route = r.pick(NODE_ROUTES.filter((x) => x !== "status"));
    return {
      label: "internal-signed-hostile",
      target: t,
      path: `/internal/v1/${route}`,
      fetch: {
        method: "POST",
        path: `/internal/v1/${route}${r.int(10) === 0 ? "?x=%zz" : ""}`,
        headers: {
          "content-type": r.pick([
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
          ]),
        },
        body: enc.encode(hostileJson(route, t.address, r)),
        sign: "secret",
      },
    };
  }],
  [4, "internal-replay", (r, t) => {
    const route = r.pick(["kv/read", "ae/digests", "ae/buckets"]);
    return {
      label: "internal-replay",
      target: t,
      path: `/internal/v1/${route}`,
      fetch: {
        method: "POST",
        path: `/internal/v1/${route}`,
        headers: { "content-type": "application/json" },
        body: enc.encode(JSON.stringify(validBody(route, t.address, r))),
        sign: "secret",
        replay: true,
      },
    };
  }],
  [4, "gossip-forged", (r, t) => {
    // Signed by a member other than `from` (401), or signed and invalid (400); unsigned (401).
    const mode = r.pick(["unsigned", "mismatch", "invalid"] as const);
    const body = mode === "invalid"
      ? hostileJson("gossip", t.address, r)
      : JSON.stringify(gossipBody(r, mode === "mismatch" ? "fz-someone-else:1" : "fz-forger:1"));
    return {
      label: "gossip-forged",
      target: t,
      path: "/internal/v1/gossip",
      expect: mode === "invalid" ? undefined : [401],
      fetch: {
        method: "POST",
        path: "/internal/v1/gossip",
        headers: { "content-type": "application/json" },
        body: enc.encode(body),
        sign: mode === "unsigned" ? undefined : "secret",
      },
    };
  }],
];

const totalWeight = gens.reduce((n, [w]) => n + w, 0);

/** Request `i` of `seed`, as the fuzzer sends it. */
export function specFor(seed: number, i: number, targets: readonly Target[]): Spec {
  const r = streamFor(seed, i);
  const t = r.pick(targets);
  let x = r.int(totalWeight);
  for (const [w, , gen] of gens) {
    if (x < w) return gen(r, t, targets);
    x -= w;
  }
  throw new Error("unreachable");
}

// ---------- sending ----------

interface Answer {
  /** Statuses of the answers read, in order; empty if none. */
  statuses: number[];
  /** `closed` (no answer), `waiting` (we gave up) or an error. */
  end: "closed" | "waiting" | string;
  text: string;
  /** A replayed signed call: the status of the second copy. */
  replayStatus?: number;
}

/** Statuses of the HTTP/1.x answers in `buf`, parsed one after another (bodies skipped). */
export function parseAnswers(buf: Buffer): number[] {
  const out: number[] = [];
  let at = 0;
  while (at < buf.length) {
    const headEnd = buf.indexOf("\r\n\r\n", at);
    if (headEnd < 0) break;
    const head = buf.subarray(at, headEnd).toString("latin1");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
    if (!m) break;
    out.push(Number(m[1]));
    at = headEnd + 4;
    const len = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (len) at += Number(len[1]);
    else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      for (;;) {
        const lineEnd = buf.indexOf("\r\n", at);
        if (lineEnd < 0) return out;
        const size = parseInt(buf.subarray(at, lineEnd).toString("latin1"), 16);
        at = lineEnd + 2 + size + 2;
        if (!(size > 0)) break;
      }
    } else break;
  }
  return out;
}

function sendRaw(address: string, bytes: Uint8Array, waitMs: number): Promise<Answer> {
  const colon = address.lastIndexOf(":");
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const sock = connect({ host: address.slice(0, colon), port: Number(address.slice(colon + 1)) });
    const finish = (end: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      const buf = Buffer.concat(chunks);
      resolve({ statuses: parseAnswers(buf), end, text: buf.subarray(0, 600).toString("latin1") });
    };
    const timer = setTimeout(() => finish("waiting"), waitMs);
    sock.on("connect", () => sock.end(bytes));
    sock.on("data", (d: Buffer) => chunks.push(d));
    sock.on("end", () => finish("closed"));
    sock.on("close", () => finish("closed"));
    sock.on("error", (e: Error & { code?: string }) => {
      // A reset after the server answered and closed is an ordinary end.
      finish(
        e.code === "ECONNRESET" || e.code === "EPIPE" ? "closed" : `error:${e.code ?? e.message}`,
      );
    });
  });
}

function signers(opts: FuzzOptions) {
  const make = (secret: string) =>
    new ClusterAuth([enc.encode(secret)], {
      selfId: "fz-fuzzer:1",
      windowMs: 60_000,
      now: Date.now,
      random: Math.random,
      warn: () => {},
    });
  return { secret: make(opts.secret), other: make(opts.otherSecret) };
}

async function sendFetch(
  address: string,
  f: FetchSpec,
  sign: ReturnType<typeof signers>,
  timeoutMs: number,
): Promise<Answer> {
  const headers = { ...f.headers };
  if (f.sign !== undefined) {
    const signer = f.sign === "secret" ? sign.secret : sign.other;
    headers[AUTH_HEADER] = signer.signRequest(address, f.method, f.path, f.body).header;
  }
  const once = async () => {
    const res = await fetch(`http://${address}${f.path}`, {
      method: f.method,
      headers,
      body: f.body as Uint8Array<ArrayBuffer> | undefined,
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    return { status: res.status, text: text.slice(0, 600) };
  };
  try {
    const a = await once();
    if (!f.replay) return { statuses: [a.status], end: "closed", text: a.text };
    const b = await once();
    return { statuses: [a.status, b.status], end: "closed", text: b.text, replayStatus: b.status };
  } catch (e) {
    const err = e as Error;
    return { statuses: [], end: `error:${err.name}: ${err.message.slice(0, 100)}`, text: "" };
  }
}

function show(spec: Spec): string {
  if (spec.raw) {
    const head = Buffer.from(spec.raw.subarray(0, 300)).toString("latin1");
    return JSON.stringify(head) + (spec.raw.length > 300 ? ` … (${spec.raw.length} bytes)` : "");
  }
  const f = spec.fetch!;
  const body = f.body ? Buffer.from(f.body.subarray(0, 200)).toString("latin1") : "";
  return `${f.method} ${f.path.slice(0, 200)} ${JSON.stringify(f.headers)}${
    f.sign ? ` signed:${f.sign}` : ""
  }${f.replay ? " replayed" : ""} body ${JSON.stringify(body)}${
    (f.body?.length ?? 0) > 200 ? ` … (${f.body!.length} bytes)` : ""
  }`;
}

/** A request line as RFC 9112 has it: token method, a target of visible ASCII, HTTP/1.0 or 1.1. */
const GOOD_REQUEST_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [\x21-\x7e]+ HTTP\/1\.[01]\r\n/;

/**
 * Is `status` an acceptable answer to `spec`? Undefined if so, else why not.
 *
 * - 503 FAILED JSON from `/kv/{key}` or `/all-nodes/{key}`: the documented "not enough replicas
 *   answered within --request-timeout", which a node slowed down by the fuzz run may answer.
 * - 505 with no body to a raw request whose request line is not `METHOD TARGET HTTP/1.x` as RFC
 *   9112 has it (or junk after a good request): Bun's HTTP parser answers so for any request line it cannot parse (a control
 *   character or a raw non-ASCII byte in the target, HTTP/2.0), before dkv sees the request.
 * - Nothing else of 500 and above, ever.
 */
function judge(spec: Spec, status: number, text: string): string | undefined {
  if (status === 503 && spec.path.startsWith("/kv/") && text.includes('"FAILED"')) return undefined;
  if (
    status === 505 && spec.raw !== undefined && !text.slice(text.indexOf(" 505 ")).includes("{")
  ) {
    // raw-garbage sends junk after a good request on purpose: the junk is the request refused.
    const head = Buffer.from(spec.raw.subarray(0, 70_000)).toString("latin1");
    if (spec.label.startsWith("raw-garbage") || !GOOD_REQUEST_LINE.test(head)) return undefined;
  }
  if (status >= 500) return `${status} (a 5xx)`;
  if (spec.expect && !spec.expect.includes(status)) {
    return `${status}, expected ${spec.expect.join(" or ")}`;
  }
  return undefined;
}

/** Run the fuzz requests; never throws on a bad answer (findings are in the report). */
export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const sign = signers(opts);
  const concurrency = opts.concurrency ?? 16;
  const bytesMax = opts.bytesMax ?? 256 * 1024 * 1024;
  const indexes = opts.only ?? Array.from({ length: opts.requests }, (_, i) => i);
  const statuses: Record<string, number> = {};
  const kinds: Record<string, number> = {};
  const findings: Finding[] = [];
  const slowest: { index: number; label: string; ms: number }[] = [];
  const unavailable: Record<string, number> = {};
  const note = (k: string) => (statuses[k] = (statuses[k] ?? 0) + 1);
  let next = 0, sent = 0, bytesSent = 0;
  const started = Date.now();

  const one = async (i: number) => {
    let spec = specFor(opts.seed, i, opts.targets);
    const size = spec.raw?.length ?? spec.fetch?.body?.length ?? 0;
    // Keep the total bounded: past the budget, oversize requests are sent without their bulk.
    if (bytesSent + size > bytesMax && size > 64 * 1024) {
      spec = { ...spec, label: `${spec.label}(trimmed)`, raw: spec.raw?.subarray(0, 64 * 1024) };
      if (spec.fetch) {
        spec = { ...spec, fetch: { ...spec.fetch, body: spec.fetch.body?.subarray(0, 1024) } };
      }
    }
    bytesSent += spec.raw?.length ?? spec.fetch?.body?.length ?? 0;
    kinds[spec.label] = (kinds[spec.label] ?? 0) + 1;
    const t0 = performance.now();
    const a = spec.raw
      ? await sendRaw(spec.target.address, spec.raw, spec.incomplete ? 1000 : 10_000)
      : await sendFetch(spec.target.address, spec.fetch!, sign, 15_000);
    sent++;
    if (!spec.incomplete) {
      slowest.push({ index: i, label: spec.label, ms: Math.round(performance.now() - t0) });
      if (slowest.length > 50) slowest.sort((x, y) => y.ms - x.ms).splice(10);
    }
    for (const s of a.statuses) note(String(s));
    if (a.statuses.includes(503)) {
      const why = /"errorMessage":"([^"]{0,60})/.exec(a.text)?.[1] ?? a.text.slice(0, 60);
      unavailable[why] = (unavailable[why] ?? 0) + 1;
    }
    if (a.statuses.length === 0) note(a.end.startsWith("error:") ? "error" : a.end);
    const add = (status: number | string, why: string) =>
      findings.push({
        index: i,
        label: spec.label,
        target: spec.target.name,
        status,
        why,
        request: show(spec),
        answer: a.text,
      });
    for (const s of a.statuses) {
      const why = judge(spec, s, a.text);
      if (why !== undefined) add(s, why);
    }
    if (a.replayStatus !== undefined && a.replayStatus !== 401) {
      add(a.replayStatus, `the replayed copy answered ${a.replayStatus}, expected 401`);
    }
    // fetch never fails on a status; an error there is the server dropping a well-formed request.
    if (spec.fetch && a.statuses.length === 0) add(a.end, "no answer to a well-formed request");
    if (spec.raw && !spec.incomplete && a.end === "waiting" && a.statuses.length === 0) {
      add("waiting", "no answer within 10 s to a complete request");
    }
  };

  const worker = async () => {
    while (next < indexes.length) {
      const i = indexes[next++]!;
      await one(i);
      if (sent % 1000 === 0) opts.onProgress?.(sent);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  slowest.sort((x, y) => y.ms - x.ms).splice(5);
  return {
    seed: opts.seed,
    sent,
    bytesSent,
    ms: Date.now() - started,
    statuses,
    kinds,
    findings,
    unavailable,
    slowest,
  };
}

/** VmRSS of a process in KiB (Linux /proc), or NaN where there is none. */
export function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** The report as lines for a human: figures, histograms and the first findings. */
export function formatReport(rep: FuzzReport, maxFindings = 20): string {
  const hist = (h: Record<string, number>) =>
    Object.entries(h).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, n]) => `${k}: ${n}`).join(", ");
  const lines = [
    `fuzz: seed ${rep.seed}, ${rep.sent} requests in ${(rep.ms / 1000).toFixed(1)} s, ${
      (rep.bytesSent / 1024 / 1024).toFixed(1)
    } MiB sent`,
    `  statuses: ${hist(rep.statuses)}`,
    `  kinds: ${hist(rep.kinds)}`,
    `  503s: ${JSON.stringify(rep.unavailable)}`,
    `  slowest: ${rep.slowest.map((x) => `#${x.index} ${x.label} ${x.ms} ms`).join(", ")}`,
    `  findings: ${rep.findings.length}`,
  ];
  for (const f of rep.findings.slice(0, maxFindings)) {
    lines.push(
      `  - #${f.index} ${f.label} on ${f.target}: ${f.why}\n      request: ${f.request}\n      answer: ${
        JSON.stringify(f.answer.slice(0, 300))
      }\n      replay: DKV_FUZZ_SEED=${rep.seed} npm run fuzz -- --seed ${rep.seed} --only ${f.index}`,
    );
  }
  return lines.join("\n");
}

// ---------- a whole run against a real cluster ----------

export interface ClusterFuzzResult {
  readonly report: FuzzReport;
  /** Members that were not running at the end. */
  readonly crashed: string[];
  /** "member: node state" for every node not UP in a member's /all-nodes. */
  readonly notUp: string[];
  /** "key via member: what was read" for every key written before the run not read back. */
  readonly lost: string[];
  /** Lines of the members' logs that name an unhandled error (a 500 or a callback that threw). */
  readonly unhandled: string[];
  readonly rss: { name: string; beforeKiB: number; afterKiB: number }[];
  readonly keys: number;
}

/**
 * An orchestrator and 3 nodes with a cluster secret (written to a temporary file), `keys` keys
 * written at quorum, the fuzz run, then every check. Everything started is killed at the end.
 */
export async function fuzzRealCluster(opts: {
  seed: number;
  requests: number;
  only?: number[];
  keys?: number;
  concurrency?: number;
  log?: (line: string) => void;
}): Promise<ClusterFuzzResult> {
  const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { randomBytes: secretBytes } = await import("node:crypto");
  const cl = await import("./cluster.ts");
  const log = opts.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), "dkv-fuzz-"));
  const secret = secretBytes(32).toString("hex");
  const otherSecret = secretBytes(32).toString("hex");
  const secretFile = join(dir, "cluster.secret");
  writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
  try {
    const args = ["--cluster-secret-file", secretFile];
    const c = await cl.startCluster(3, { nodeArgs: args, orchArgs: args });
    const members = c.all();
    const targets: Target[] = members.map((m, i) => ({
      name: m.name,
      address: m.address,
      role: i === 0 ? "orchestrator" : "node",
    }));
    // Keys written before the run: values with spaces, Unicode, slashes, empty.
    const keyCount = opts.keys ?? 60;
    const kept = new Map<string, string>();
    for (let i = 0; i < keyCount; i++) {
      const key = `keep-${i}${i % 3 === 0 ? "/é 🔑" : ""}`;
      const value = i % 10 === 0 ? "" : `value ${i} ${"ü".repeat(i % 7)}`;
      const m = members[1 + (i % 3)]!;
      const r = await cl.http("PUT", m.address, `/kv/${encodeURIComponent(key)}`, value);
      if (r.status !== 200) {
        throw new Error(`writing ${key} before the run: ${r.status} ${JSON.stringify(r.body)}`);
      }
      kept.set(key, value);
    }
    const logStart = members.map((m) => m.log().length);
    const before = members.map((m) => rssKiB(m.proc.pid));
    log(
      `fuzz: seed ${opts.seed}, ${
        opts.only ? `requests ${opts.only.join(",")}` : `${opts.requests} requests`
      } ` +
        `against ${members.map((m) => `${m.name} (pid ${m.proc.pid})`).join(", ")}`,
    );
    const report = await runFuzz({
      seed: opts.seed,
      requests: opts.requests,
      only: opts.only,
      targets,
      secret,
      otherSecret,
      concurrency: opts.concurrency,
      onProgress: (n) => log(`  ${n} sent`),
    });
    const after = members.map((m) => rssKiB(m.proc.pid));
    const crashed = members.filter((m) => !m.alive()).map((m) =>
      `${m.name}: exited (${m.proc.exitCode ?? m.proc.signalCode})`
    );
    const notUp: string[] = [];
    const lost: string[] = [];
    const nodeIds = c.nodes.map((n) => n.address);
    for (const m of members.filter((x) => x.alive())) {
      // Every node UP in every member's view (waited for: a member slowed by the run may have
      // been suspected for a moment, and must come back on its own).
      try {
        await cl.waitFor(
          `${m.name} to list every node UP`,
          () => cl.allUp(m.address, nodeIds),
          30_000,
        );
      } catch {
        const states = await cl.nodeStates(m.address).catch((e) => new Map([["?", String(e)]]));
        notUp.push(`${m.name}: ${JSON.stringify([...states])}`);
      }
      for (const [key, value] of kept) {
        const r = await cl.http("GET", m.address, `/kv/${encodeURIComponent(key)}`).catch((e) => ({
          status: 0,
          body: String(e),
        }));
        if (r.status !== 200 || r.body?.value !== value) {
          lost.push(`${key} via ${m.name}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
        }
      }
    }
    const unhandled = members.flatMap((m, i) =>
      m.log().slice(logStart[i]).split("\n").filter((l) =>
        /unhandled|uncaught|panic|TypeError|RangeError/i.test(l)
      )
        .map((l) => `${m.name}: ${l.slice(0, 400)}`)
    );
    return {
      report,
      crashed,
      notUp,
      lost,
      unhandled,
      rss: members.map((m, i) => ({ name: m.name, beforeKiB: before[i]!, afterKiB: after[i]! })),
      keys: kept.size,
    };
  } finally {
    await cl.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The result's checks as failure lines (empty: the run passed). RSS: each member at most 512 MiB
 * at the end (they start near 60 MiB; a run of 10,000 or 50,000 requests ends between 70 and 250
 * MiB, depending on when the garbage collector last ran: oversize bodies are up to 1.5 MiB each,
 * up to 16 in flight). A leak of 10 KiB a request would break it within 50,000 requests.
 */
export function failures(res: ClusterFuzzResult, rssKiBMax = 512 * 1024): string[] {
  const out: string[] = [];
  for (const f of res.report.findings) out.push(`finding #${f.index} ${f.label}: ${f.why}`);
  for (const x of res.crashed) out.push(`crashed: ${x}`);
  for (const x of res.notUp) out.push(`not every node UP: ${x}`);
  for (const x of res.lost) out.push(`key not read back: ${x}`);
  for (const x of res.unhandled) out.push(`log: ${x}`);
  for (const r of res.rss) {
    if (!(r.afterKiB <= rssKiBMax)) {
      out.push(
        `RSS of ${r.name} grew from ${r.beforeKiB} KiB to ${r.afterKiB} KiB (at most ${rssKiBMax})`,
      );
    }
  }
  return out;
}

export function formatResult(res: ClusterFuzzResult): string {
  const rss = res.rss.map((r) =>
    `${r.name} ${(r.beforeKiB / 1024).toFixed(0)} → ${(r.afterKiB / 1024).toFixed(0)} MiB`
  ).join(", ");
  return `${formatReport(res.report)}\n  RSS: ${rss}\n  processes alive: ${
    res.crashed.length === 0 ? "all" : res.crashed.join("; ")
  }; nodes UP everywhere: ${res.notUp.length === 0 ? "yes" : "no"}; ${
    res.keys - new Set(res.lost.map((l) => l.split(" via ")[0])).size
  }/${res.keys} keys read back through every member`;
}
