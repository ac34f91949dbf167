/**
 * Client tokens, protected mode and the Origin check with real processes (issue 9, parts 3, 4
 * and 6): an orchestrator and three nodes started with --cluster-secret-file and
 * --auth-token-file (files written to a temporary directory at run time). Each role gets exactly
 * its routes, on a node and on the orchestrator; protected mode refuses --host 0.0.0.0 without a
 * secret and tokens (exit 2, one line) and serves it with --insecure; a web page's text/plain
 * POST with a foreign Origin is refused and writes nothing. Everything started is killed in
 * afterAll.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  childEnv,
  type Cluster,
  DKV,
  http,
  launch,
  runCaptured,
  startCluster,
  startOrchestrator,
  stopAll,
} from "../support/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "dkv-auth-"));
const secretFile = join(dir, "cluster.secret");
const tokenFile = join(dir, "tokens");
const token = () => randomBytes(24).toString("hex");
const READ = token(), WRITE = token(), ADMIN = token();
writeFileSync(secretFile, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600 });
writeFileSync(
  tokenFile,
  `# dkv client tokens\n${READ} read\n${WRITE}  write  # the app\n\n${ADMIN}\tadmin\n`,
  { mode: 0o600 },
);
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

let c: Cluster;

beforeAll(async () => {
  const args = ["--cluster-secret-file", secretFile, "--auth-token-file", tokenFile];
  c = await startCluster(3, { nodeArgs: args, orchArgs: args, headers: bearer(ADMIN) });
}, 60_000);

afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

/** ./dkv to its end (these all exit at once). */
async function runDkv(args: string[]) {
  const r = await runCaptured([DKV, ...args], { env: childEnv(), timeoutMs: 20_000 });
  expect(r.timedOut).toBe(false);
  return r;
}

describe("client tokens (real processes)", () => {
  test("each role gets exactly its routes: route × (none, wrong, read, write, admin)", async () => {
    // The route's own answer (200, 404 for a key never written) means the request got through.
    const table: [string, string, number[]][] = [
      ["GET", "/health", [200, 200, 200, 200, 200]],
      ["PUT", "/kv/auth-k", [401, 401, 403, 200, 200]],
      ["POST", "/kv/auth-k", [401, 401, 403, 200, 200]],
      ["GET", "/kv/auth-k", [401, 401, 200, 200, 200]],
      ["DELETE", "/kv/auth-never", [401, 401, 403, 404, 404]],
      ["GET", "/kv/all-data", [401, 401, 403, 403, 200]],
      ["GET", "/all-nodes", [401, 401, 200, 200, 200]],
      ["GET", "/all-nodes/auth-k", [401, 401, 200, 200, 200]],
      ["GET", "/cluster/status", [401, 401, 403, 403, 200]],
      // /admin/leave with the admin token is in the next test (it would make the node leave).
      ["POST", "/admin/leave", [401, 401, 403, 403, -1]],
    ];
    const tokens = [undefined, token(), READ, WRITE, ADMIN];
    for (const m of [c.nodes[0]!, c.orchestrator]) {
      const got: string[] = [], want: string[] = [];
      for (const [method, path, statuses] of table) {
        for (let i = 0; i < tokens.length; i++) {
          if (statuses[i] === -1) continue;
          const t = tokens[i];
          const body = method === "PUT" || method === "POST" ? "v" : undefined;
          const r = await http(method, m.address, path, body, t ? bearer(t) : undefined);
          got.push(
            `${method} ${path} ${["none", "wrong", "read", "write", "admin"][i]} ${r.status}`,
          );
          want.push(
            `${method} ${path} ${["none", "wrong", "read", "write", "admin"][i]} ${statuses[i]}`,
          );
          if (r.status === 401 || r.status === 403) expect(r.body.status).toBe("FAILED");
        }
      }
      expect(got).toEqual(want);
    }
  });

  test("admin may make the orchestrator answer /admin/leave (its 400: only nodes leave)", async () => {
    const r = await http("POST", c.orchestrator.address, "/admin/leave", undefined, bearer(ADMIN));
    expect(r.status).toBe(400);
  });

  test("a 401 says Bearer; internal routes still need the secret, not a token", async () => {
    const res = await fetch(`http://${c.nodes[1]!.address}/kv/x`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="dkv"');
    const internal = await http("GET", c.nodes[1]!.address, "/internal/v1/status", undefined, {
      ...bearer(ADMIN),
    });
    expect(internal.status).toBe(401); // unsigned: the cluster secret's 401
    expect(internal.body.error.errorMessage).toStartWith("not authenticated");
  });

  test("a web page's text/plain POST with a foreign Origin: 403, nothing written", async () => {
    const m = c.nodes[2]!;
    for (const headers of [{}, bearer(ADMIN)]) {
      const r = await http("POST", m.address, "/kv/from-evil", "pwned", {
        ...headers,
        "content-type": "text/plain",
        origin: "http://evil.example",
      });
      expect(r.status).toBe(403);
      expect(r.body.error.errorMessage).toStartWith("origin 'http://evil.example' is not allowed");
    }
    expect((await http("GET", m.address, "/kv/from-evil", undefined, bearer(READ))).status).toBe(
      404,
    );
    // Its own origin is served.
    const own = await http("PUT", m.address, "/kv/from-self", "ok", {
      ...bearer(WRITE),
      origin: `http://${m.address}`,
    });
    expect(own.status).toBe(200);
  });

  test("an encoded route name is a 400 over real HTTP; HEAD /kv/all-data is headers only", async () => {
    const m = c.nodes[1]!;
    for (const path of ["/%69nternal/v1/status", "/%6Bv/x", "/%61dmin/leave"]) {
      const r = await http("POST", m.address, path, "{}", bearer(ADMIN));
      expect([path, r.status, r.body.status]).toEqual([path, 400, "FAILED"]);
    }
    const head = await fetch(`http://${m.address}/kv/all-data`, {
      method: "HEAD",
      headers: bearer(ADMIN),
    });
    expect([head.status, await head.text()]).toEqual([200, ""]);
    const low = await fetch(`http://${m.address}/kv/%61ll-data`, {
      method: "HEAD",
      headers: bearer(READ),
    });
    expect(low.status).toBe(403);
  });

  test("a bad token file: one line naming the problem, exit 2", async () => {
    const bad = join(dir, "bad-tokens");
    writeFileSync(bad, `${READ} superuser\n`);
    const r = await runDkv(["--role", "orchestrator", "--port", "1", "--auth-token-file", bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `dkv: --auth-token-file: ${bad}: line 1: role must be read, write or admin (got 'superuser')\n`,
    );
    expect(r.stderr).not.toContain(READ);
    const missing = await runDkv(["--role", "orchestrator", "--auth-token-file", join(dir, "no")]);
    expect([missing.code, missing.stderr.trim().split("\n").length]).toEqual([2, 1]);
  });
});

describe("protected mode (real processes)", () => {
  test("--host 0.0.0.0 without a secret and tokens: one line, exit 2", async () => {
    const r = await runDkv(["--role", "orchestrator", "--host", "0.0.0.0", "--port", "1"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      "dkv: --host: 0.0.0.0 is not a loopback address, so anyone who reaches it could use the " +
        "cluster: add --cluster-secret-file and --auth-token-file (docs/security.md), or " +
        "--insecure to run unprotected\n",
    );
    const half = await runDkv([
      ...["--role", "orchestrator", "--host", "0.0.0.0", "--cluster-secret-file", secretFile],
    ]);
    expect(half.code).toBe(2);
    expect(half.stderr).toContain("add --auth-token-file (docs/security.md)");
  });

  test("--host 0.0.0.0 needs --advertise (even with --insecure)", async () => {
    const r = await runDkv(["--role", "orchestrator", "--host", "0.0.0.0", "--insecure"]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([
      "dkv: --host: 0.0.0.0 listens on every interface, so it is no address peers can dial; add " +
      "--advertise HOST:PORT (an address of this machine the other members reach)",
    ]);
  });

  test("--host 0.0.0.0 --insecure --advertise: starts, and serves", async () => {
    const m = await launch((port) =>
      startOrchestrator(port, [
        "--host",
        "0.0.0.0",
        "--advertise",
        `127.0.0.1:${port}`,
        "--insecure",
      ])
    );
    expect((await http("GET", m.address, "/health")).status).toBe(200);
    expect(m.log()).toContain("--insecure: protected mode is off");
    m.kill(15);
    await m.exited;
  });

  test("--host 0.0.0.0 with a secret, tokens and --advertise: starts, and asks for tokens", async () => {
    const m = await launch((port) =>
      startOrchestrator(port, [
        ...["--host", "0.0.0.0", "--advertise", `127.0.0.1:${port}`],
        ...["--cluster-secret-file", secretFile, "--auth-token-file", tokenFile],
      ])
    );
    expect((await http("GET", m.address, "/all-nodes")).status).toBe(401);
    expect((await http("GET", m.address, "/all-nodes", undefined, bearer(READ))).status).toBe(200);
    expect(m.log()).toContain("client tokens: 1 read, 1 write, 1 admin from");
    expect(m.log()).not.toContain(READ);
    m.kill(15);
    await m.exited;
  });
});

describe("slow senders (real processes)", () => {
  test("a body slower than --body-read-timeout: 408 FAILED JSON, connection closed", async () => {
    const m = await launch((port) => startOrchestrator(port, ["--body-read-timeout", "500ms"]));
    const [host, port] = m.address.split(":") as [string, string];
    const answer = await new Promise<string>((resolve, reject) => {
      let got = "";
      const sock = connect(Number(port), host, () => {
        // Ten bytes announced, two sent, then nothing.
        sock.write(`PUT /kv/slow HTTP/1.1\r\nHost: ${m.address}\r\nContent-Length: 10\r\n\r\nab`);
      });
      sock.on("data", (d) => {
        got += d.toString();
      });
      sock.on("close", () => resolve(got));
      sock.on("error", reject);
      setTimeout(() => {
        sock.destroy();
        resolve(got);
      }, 5000);
    });
    expect(answer).toStartWith("HTTP/1.1 408");
    expect(answer.toLowerCase()).toContain("connection: close");
    expect(answer).toContain("value did not arrive within 500ms (--body-read-timeout)");
    m.kill(15);
    await m.exited;
  }, 15_000);
});

describe("admin on a node (last: the node leaves)", () => {
  test("POST /admin/leave with the admin token: 202, the node leaves", async () => {
    const m = c.nodes[0]!;
    const write = await http("POST", m.address, "/admin/leave", undefined, bearer(WRITE));
    expect(write.status).toBe(403);
    const r = await http("POST", m.address, "/admin/leave", undefined, bearer(ADMIN));
    expect([r.status, r.body.leaving]).toEqual([202, true]);
    expect(await m.exited).toBe(0);
  });
});
