/**
 * Starting and stopping members, as the README's "Stopping" paragraph promises, with real
 * processes: `POST /admin/leave` (202 on a node, 400 on the orchestrator, 409 on the last live
 * node), a first SIGTERM leaving gracefully (exit 0), a second one exiting at once (exit 1),
 * `--leave-timeout` running out (exit 1), the orchestrator stopping on SIGTERM (exit 0), a LEFT
 * node started again rejoining the ring, and `scripts/demo.sh stop`. Each test starts its own
 * small cluster (local preset), so each runs alone; everything is killed after each test.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  adoptPid,
  atExit,
  childEnv,
  DKV,
  freePorts,
  http,
  launch,
  portFree,
  type Proc,
  restart,
  runCaptured,
  startCluster,
  startNode,
  stopAll,
  waitFor,
} from "../support/cluster.ts";
import { allData, figures, listedAs, placementProblems, writeKeys } from "../support/inspect.ts";

afterEach(async () => {
  await stopAll();
});
afterAll(async () => {
  await stopAll();
});

const SIGTERM = 15;

/** No anti-entropy rounds: what reaches a node then came by hand-off or rebalancing. */
const NO_ANTI_ENTROPY = ["--anti-entropy-interval", "1h"];

/**
 * A node whose graceful leave cannot finish on its own: it streams one record a second at most
 * (one key per batch, 1 byte/s: after the first batch the next waits about a minute).
 */
const SLOW_LEAVER = ["--rebalance-rate", "1", "--batch-keys", "1"];

/** Quorum reads of every key through `at` give the expected values. */
async function readAll(at: Proc, expected: ReadonlyMap<string, string>): Promise<string[]> {
  const wrong: string[] = [];
  for (const [key, value] of expected) {
    const r = await http("GET", at.address, `/kv/${key}`);
    if (r.status !== 200 || r.body.value !== value) {
      wrong.push(`${key}: ${r.status} ${JSON.stringify(r.body)}`);
    }
  }
  return wrong;
}

/** Keys of `expected` that fewer than `copies` of `nodes` hold with the expected value. */
async function underCopied(
  nodes: readonly Proc[],
  expected: ReadonlyMap<string, string>,
  copies: number,
): Promise<string[]> {
  const stores = await Promise.all(nodes.map(allData));
  return [...expected].filter(([k, v]) => stores.filter((s) => s[k] === v).length < copies)
    .map(([k]) => k);
}

/**
 * Wait until every key is held by three of `nodes`. A quorum write is acknowledged by two
 * replicas and the third copy may still be in flight; once all three have landed, a node that
 * then vanishes took at most one of them.
 */
async function threeCopies(
  nodes: readonly Proc[],
  expected: ReadonlyMap<string, string>,
): Promise<void> {
  await waitFor(
    "three copies of every key",
    async () => (await underCopied(nodes, expected, 3)).length === 0,
    30_000,
  );
}

/**
 * Quorum reads of every key through `at`, until all give the expected values. Right after a
 * member vanished mid-leave, members whose rings differ for a moment refuse quorum (503) rather
 * than answer from a ring their peers do not share; the deadline only bounds the wait.
 */
async function readableAgain(at: Proc, expected: ReadonlyMap<string, string>): Promise<void> {
  let wrong: string[] = [];
  const startedAt = Date.now();
  await waitFor("quorum reads of every key", async () => {
    wrong = await readAll(at, expected);
    return wrong.length === 0;
  }, 30_000).catch(() => undefined);
  expect(wrong.slice(0, 3)).toEqual([]);
  console.log(`[lifecycle] every key readable at quorum after ${Date.now() - startedAt} ms`);
}

describe("graceful leave", () => {
  test(
    "POST /admin/leave: 202 on a node, which hands its data off, is LEFT everywhere and exits 0; " +
      "400 on the orchestrator",
    async () => {
      const c = await startCluster(4, { nodeArgs: NO_ANTI_ENTROPY });
      const keys = await writeKeys(c.nodes[0]!, "adm", 60);
      const [leaver, ...rest] = [c.nodes[3]!, ...c.nodes.slice(0, 3)];
      expect(Object.keys(await allData(leaver)).length).toBeGreaterThan(0);

      const orch = await http("POST", c.orchestrator.address, "/admin/leave");
      expect(orch.status).toBe(400);
      expect(orch.body).toMatchObject({ status: "FAILED", error: { errorSystemCode: 400 } });
      expect(c.orchestrator.alive()).toBe(true);

      const r = await http("POST", leaver.address, "/admin/leave");
      expect(r).toEqual({
        status: 202,
        body: { status: "SUCCESS", id: leaver.address, leaving: true },
      });
      expect(await leaver.exited).toBe(0);
      expect(leaver.log()).toContain("left the ring: data handed off");
      await waitFor(
        "every member to list the leaver LEFT, out of the ring",
        () => listedAs([c.orchestrator, ...rest], leaver.address, "LEFT", false),
        30_000,
      );
      // Handed off (anti-entropy is off): each key on exactly its replicas among the three left.
      let problems: string[] = [];
      await waitFor("every key on exactly its replicas", async () => {
        problems = await placementProblems(rest[0]!, rest, keys);
        return problems.length === 0;
      }, 30_000).catch(() => undefined);
      expect(problems.slice(0, 5)).toEqual([]);
      expect(await readAll(rest[1]!, keys)).toEqual([]);
    },
    90_000,
  );

  test(
    "a node left by SIGTERM (exit 0) and started again is UP and in the ring everywhere, and gets its data back",
    async () => {
      const c = await startCluster(3, { nodeArgs: NO_ANTI_ENTROPY });
      const keys = await writeKeys(c.nodes[0]!, "back", 30);
      const [leaver, ...rest] = [c.nodes[2]!, c.nodes[0]!, c.nodes[1]!];
      leaver.kill(SIGTERM);
      expect(await leaver.exited).toBe(0);
      await waitFor(
        "every member to list the leaver LEFT, out of the ring",
        () => listedAs([c.orchestrator, ...rest], leaver.address, "LEFT", false),
        30_000,
      );

      // Same address, same flags: a new incarnation, which beats LEFT.
      const back = await restart(leaver, `${leaver.name}-back`);
      await waitFor(
        "every member to list it UP and in the ring again",
        () => listedAs([c.orchestrator, ...rest, back], back.address, "UP", true),
        30_000,
      );
      // N = 3 on three nodes: it owns every partition again, and rebalancing (anti-entropy is
      // off) refills it.
      expect((await figures(back)).partitionsOwned).toBe(256);
      let problems: string[] = [];
      await waitFor("every key on all three nodes again", async () => {
        problems = await placementProblems(rest[0]!, [...rest, back], keys);
        return problems.length === 0;
      }, 30_000).catch(() => undefined);
      expect(problems.slice(0, 5)).toEqual([]);
    },
    90_000,
  );

  test("a second SIGTERM during a leave exits at once with code 1", async () => {
    const c = await startCluster(3);
    const slow = await launch((port) =>
      startNode(port, c.orchestrator.port, [...SLOW_LEAVER, "--leave-timeout", "5m"])
    );
    const everyone = [c.orchestrator, ...c.nodes, slow];
    await waitFor(
      "every member to list the slow node UP",
      () => listedAs(everyone, slow.address, "UP", true),
      30_000,
    );
    const keys = await writeKeys(c.nodes[0]!, "twice", 40);
    await waitFor(
      "the slow node to hold several keys",
      async () => Object.keys(await allData(slow)).length >= 5,
      30_000,
    );
    await threeCopies([...c.nodes, slow], keys);

    slow.kill(SIGTERM);
    await waitFor("its leave to start", async () => (await figures(slow)).leaving === true);
    // Still leaving: it cannot have handed off more than a key or two yet.
    expect(slow.alive()).toBe(true);
    slow.kill(SIGTERM);
    expect(await slow.exited).toBe(1);
    const log = slow.log();
    expect(log).toContain("SIGTERM again: exiting now");
    expect(log).not.toContain("left the ring");
    expect(log).not.toContain("leave timed out");
    // The other replicas still hold everything: each key had 3 replicas, it was at most one.
    expect(await underCopied(c.nodes, keys, 2)).toEqual([]);
    await readableAgain(c.nodes[1]!, keys);
  }, 90_000);

  test(
    "a leave that outlasts --leave-timeout exits with code 1; the other replicas keep the data",
    async () => {
      const c = await startCluster(3);
      const slow = await launch((port) =>
        startNode(port, c.orchestrator.port, [...SLOW_LEAVER, "--leave-timeout", "1s"])
      );
      const everyone = [c.orchestrator, ...c.nodes];
      await waitFor(
        "every member to list the slow node UP",
        () => listedAs([...everyone, slow], slow.address, "UP", true),
        30_000,
      );
      const keys = await writeKeys(c.nodes[0]!, "timeout", 40);
      await waitFor(
        "the slow node to hold several keys",
        async () => Object.keys(await allData(slow)).length >= 5,
        30_000,
      );
      await threeCopies([...c.nodes, slow], keys);

      slow.kill(SIGTERM);
      expect(await slow.exited).toBe(1);
      expect(slow.log()).toMatch(/leave timed out after 1000ms with \d+ records/);
      expect(slow.log()).not.toContain("left the ring");
      await waitFor(
        "every member to list it LEFT",
        () => listedAs(everyone, slow.address, "LEFT", false),
        30_000,
      );
      expect(await underCopied(c.nodes, keys, 2)).toEqual([]);
      await readableAgain(c.nodes[2]!, keys);
      // Anti-entropy restores every copy on the three nodes left.
      let problems: string[] = [];
      await waitFor("every key on exactly its replicas", async () => {
        problems = await placementProblems(c.nodes[0]!, c.nodes, keys);
        return problems.length === 0;
      }, 30_000).catch(() => undefined);
      expect(problems.slice(0, 5)).toEqual([]);
    },
    90_000,
  );

  test(
    "the last live node in the ring refuses to leave: /admin/leave 409, SIGTERM logged, it keeps serving; a second SIGTERM exits 1",
    async () => {
      const c = await startCluster(1);
      const last = c.nodes[0]!;
      expect((await http("PUT", last.address, "/kv/only", "copy")).status).toBe(200);
      const r = await http("POST", last.address, "/admin/leave");
      expect(r.status).toBe(409);
      expect(r.body).toMatchObject({ status: "FAILED", error: { errorSystemCode: 409 } });
      expect(r.body.error.errorMessage).toContain("no other live node in the ring");

      last.kill(SIGTERM);
      await waitFor("it to log why it stays", () => last.log().includes("cannot leave"));
      expect(last.alive()).toBe(true);
      expect((await figures(last)).leaving).toBe(false);
      expect((await http("GET", last.address, "/kv/only")).body.value).toBe("copy");
      last.kill(SIGTERM);
      expect(await last.exited).toBe(1);
    },
    60_000,
  );
});

describe("the orchestrator", () => {
  test("exits 0 on SIGTERM; the nodes see it DOWN and keep serving", async () => {
    const c = await startCluster(3);
    c.orchestrator.kill(SIGTERM);
    expect(await c.orchestrator.exited).toBe(0);
    expect(c.orchestrator.log()).toContain("SIGTERM: stopping");
    await waitFor(
      "every node to list the orchestrator DOWN",
      async () => {
        for (const n of c.nodes) {
          const r = await http("GET", n.address, "/cluster/status");
          if (r.body.orchestrator?.state !== "DOWN") return false;
        }
        return true;
      },
      30_000,
    );
    expect((await http("PUT", c.nodes[0]!.address, "/kv/after", "orchestrator")).status).toBe(200);
    expect((await http("GET", c.nodes[2]!.address, "/kv/after")).body.value).toBe("orchestrator");
  }, 60_000);
});

describe("scripts/demo.sh", () => {
  const dir = mkdtempSync(join(tmpdir(), "dkv-demo-test-"));
  const [orchPort, ...nodePorts] = freePorts(6);
  const respPorts = freePorts(5);
  const env = childEnv({
    DEMO_DIR: dir,
    DEMO_ORCHESTRATOR_PORT: String(orchPort),
    DEMO_NODE_PORTS: nodePorts.join(" "),
    DEMO_RESP_PORTS: respPorts.join(" "),
  });
  const demo = (cmd: string) =>
    runCaptured(["bash", "scripts/demo.sh", cmd], { env, timeoutMs: 60_000 });
  const recorded = () =>
    existsSync(join(dir, "pids"))
      ? readFileSync(join(dir, "pids"), "utf8").trim().split("\n").map((l) =>
        Number(l.split(" ")[0])
      )
      : [];
  /** Still running, and still a dkv (not a recycled pid). */
  const running = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("dkv\0--role");
    } catch {
      return false;
    }
  };
  // Should the runner be stopped while demo.sh starts them, its processes die with the runner.
  atExit(() => {
    for (const pid of recorded()) if (running(pid)) process.kill(pid, 9);
  });
  afterAll(async () => {
    if (recorded().some(running)) await demo("stop");
    for (const pid of recorded()) if (running(pid)) process.kill(pid, 9);
    rmSync(dir, { recursive: true, force: true });
  });

  test(
    "start brings up six members; stop stops exactly them, gracefully, and frees the ports",
    async () => {
      const started = await demo("start");
      const pids = recorded();
      for (const pid of pids) adoptPid(pid); // killed at exit of the runner, should this fail
      expect({ code: started.code, stderr: started.stderr }).toEqual({ code: 0, stderr: "" });
      expect(started.stdout).toContain("all 5 nodes are UP");
      expect(pids.length).toBe(6);
      expect(pids.every(running)).toBe(true);
      const r = await http("GET", `127.0.0.1:${nodePorts[3]}`, "/kv/best_movie");
      expect(r.body.value).toBe("Lord of the rings");
      // The CLI line it prints works as printed.
      const cli = started.stdout.split("\n").map((l) => l.trim()).find((l) =>
        l.startsWith("./dkv get best_movie ")
      );
      expect(cli).toBeDefined();
      const got = await runCaptured([DKV, ...cli!.split(/\s+/).slice(1)], { env });
      expect([got.code, got.stdout]).toEqual([0, "Lord of the rings\n"]);
      // It prints the dashboard's URL, and the dashboard is there (issue 14).
      const url = /Dashboard: (http:\/\/\S+\/ui)/.exec(started.stdout)?.[1];
      expect(url).toBe(`http://127.0.0.1:${nodePorts[0]}/ui`);
      const page = await fetch(url!);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("<title>dkv");
      // And the redis-cli line, against the node's --resp-port.
      const rcli = started.stdout.split("\n").map((l) => l.trim()).find((l) =>
        l.startsWith("redis-cli -p ") && l.endsWith(" get best_movie")
      );
      expect(rcli).toBe(`redis-cli -p ${respPorts[0]} get best_movie`);
      const rgot = await runCaptured(rcli!.split(/\s+/), { env });
      expect([rgot.code, rgot.stdout]).toEqual([0, "Lord of the rings\n"]);

      const stopped = await demo("stop");
      expect(stopped.code).toBe(0);
      expect(stopped.stdout).toContain("stopped 6 process(es)");
      expect(stopped.stdout).not.toContain("SIGKILL");
      expect(pids.filter(running)).toEqual([]);
      expect([orchPort!, ...nodePorts, ...respPorts].filter((p) => !portFree(p))).toEqual([]);
      expect(existsSync(join(dir, "pids"))).toBe(false);
      // Stopping again is harmless.
      const again = await demo("stop");
      expect(again.code).toBe(0);
      expect(again.stdout).toContain("nothing to stop");
    },
    90_000,
  );
});
