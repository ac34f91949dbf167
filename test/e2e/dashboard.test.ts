/**
 * The web dashboard in a real browser: playwright-core driving the system's Chromium (Debian's
 * `chromium` package; .ci/run installs it when missing) against a real cluster of ./dkv
 * processes (orchestrator + 3 nodes).
 *
 * It loads /ui, sees the three nodes UP, puts a key through the key browser and reads it back
 * with curl, kills one node with SIGKILL and sees it turn DOWN within 5 s (a deadline that
 * bounds the wait, not a timing asserted), and saves a screenshot: tmp/dashboard.png always,
 * docs/dashboard.png (the README's) when DKV_UPDATE_SCREENSHOT=1.
 *
 * No Chromium: the test fails when run as root (CI can install it; it must run there) and is
 * skipped with a loud message otherwise.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { type Cluster, http, ROOT, startCluster, stopAll, waitFor } from "../support/cluster.ts";

const CHROMIUM_PATHS = [
  process.env.DKV_CHROMIUM ?? "",
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
].filter((p) => p !== "");
const chromiumPath = CHROMIUM_PATHS.find((p) => existsSync(p));
const isRoot = process.getuid?.() === 0;

if (chromiumPath === undefined && !isRoot) {
  console.error(
    "\n!!! dashboard.test.ts SKIPPED: no Chromium found (tried " +
      `${CHROMIUM_PATHS.join(", ")}). Install Debian's chromium (apt-get install chromium) ` +
      "or set DKV_CHROMIUM to run the browser test. !!!\n",
  );
}
const run = chromiumPath !== undefined || isRoot ? test : test.skip;

let cluster: Cluster | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  if (chromiumPath === undefined) return;
  cluster = await startCluster(3);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    // Root (CI) cannot use Chromium's sandbox; the page is our own, on loopback.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
});

afterAll(async () => {
  await browser?.close().catch(() => {});
  await stopAll();
});

/** The state a member's row shows, or undefined when there is no row for it yet. */
function rowState(page: Page, id: string): Promise<string | null> {
  return page.evaluate(
    (memberId) =>
      [...document.querySelectorAll<HTMLElement>("tr[data-member]")]
        .find((tr) => tr.dataset.member === memberId)?.dataset.state ?? null,
    id,
  );
}

run(
  "the dashboard: members UP, key browser put read back with curl, a killed node turns DOWN",
  async () => {
    if (chromiumPath === undefined) {
      throw new Error("no Chromium found and running as root: .ci/run should have installed it");
    }
    const c = cluster!;
    const node = c.nodes[0]!;
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));

    // GET / redirects to the dashboard.
    const root = await fetch(`http://${node.address}/`, { redirect: "manual" });
    expect(root.status).toBe(302);
    expect(root.headers.get("location")).toBe("/ui");

    await page.goto(`http://${node.address}/`);
    expect(new URL(page.url()).pathname).toBe("/ui");

    // Three nodes UP (and the orchestrator), as the member table shows them.
    const ids = c.nodes.map((n) => n.address);
    await waitFor("the dashboard to show the three nodes UP", async () => {
      const states = await Promise.all(ids.map((id) => rowState(page, id)));
      return states.every((s) => s === "UP");
    }, 20_000);
    expect(await page.locator("tr[data-member]").count()).toBe(4);
    // The partition map: one cell per partition.
    await waitFor("the partition map", async () => (await page.locator(".cell").count()) === 256);

    // Some traffic, so the request panel has something to draw.
    for (let i = 0; i < 30; i++) {
      expect((await http("PUT", node.address, `/kv/ui-demo-${i}`, `value ${i}`)).status).toBe(200);
      expect((await http("GET", node.address, `/kv/ui-demo-${i}`)).status).toBe(200);
    }

    // Put a key through the key browser...
    const key = `dashboard key ${Date.now()}`;
    await page.fill("#kv-key", key);
    await page.fill("#kv-value", "put from the browser");
    await page.click("#kv-put");
    await waitFor(
      "the PUT answer",
      async () => (await page.textContent("#kv-out"))?.startsWith("PUT 200"),
    );
    // ...and read it back with curl, from another node. A member starved of CPU (the browser
    // shares the two cores) can briefly suspect its peers and then refuse quorum for 1 s, with a
    // 503 that says so: curl again after it, as a client would (any other answer counts at once).
    let got: { status?: string; error?: { errorSystemCode?: number } } = {};
    for (let attempt = 1;; attempt++) {
      const curl = Bun.spawnSync([
        "curl",
        "-s",
        `http://${c.nodes[1]!.address}/kv/${encodeURIComponent(key)}`,
      ]);
      expect(curl.exitCode).toBe(0);
      got = JSON.parse(curl.stdout.toString());
      if (got.error?.errorSystemCode !== 503 || attempt >= 10) break;
      await Bun.sleep(300);
    }
    expect(got).toMatchObject({ status: "SUCCESS", key, value: "put from the browser" });

    // The key browser lists it by prefix and gets it back.
    await page.fill("#kv-prefix", "dashboard key");
    await page.click("#kv-list");
    await waitFor(
      "the key list",
      async () => (await page.locator("#kv-keys a").allTextContents()).includes(key),
    );
    // From the cluster-wide listing (GET /kv?prefix=), not this member's own replicas.
    expect(await page.textContent("#kv-keys-note")).toContain("from the cluster");
    await page.fill("#kv-key", "");
    await page.click(`#kv-keys a[data-key="${key}"]`);
    await waitFor(
      "the GET answer",
      async () => (await page.textContent("#kv-out"))?.startsWith("GET 200"),
    );
    expect(await page.inputValue("#kv-value")).toBe("put from the browser");

    // Steady traffic for a few seconds: the request panel (polled each second from /metrics)
    // shows a rate, and the member table the keys.
    let traffic = true;
    const load = (async () => {
      for (let i = 0; traffic && i < 2000; i++) {
        await http("PUT", node.address, `/kv/ui-load-${i % 50}`, `v${i}`);
        await http("GET", node.address, `/kv/ui-load-${i % 50}`);
        await Bun.sleep(5);
      }
    })();
    try {
      await waitFor("a request rate above zero", async () => {
        const rate = await page.textContent("#rate");
        return rate !== null && parseFloat(rate) > 0;
      });
      await waitFor("the key count in the member table", async () => {
        const keys = await page.textContent(`tr[data-member="${node.address}"] td:nth-child(7)`);
        return keys !== null && Number(keys.replace(/\D/g, "")) >= 30;
      });
      await Bun.sleep(2500); // a few points on the charts, for the screenshot
    } finally {
      traffic = false;
      await load;
    }

    const shot = join(ROOT, "tmp", "dashboard.png");
    mkdirSync(join(ROOT, "tmp"), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    if (process.env.DKV_UPDATE_SCREENSHOT === "1") {
      await page.screenshot({ path: join(ROOT, "docs", "dashboard.png"), fullPage: true });
    }

    // Kill one node: its row turns DOWN within 5 s.
    const victim = c.nodes[2]!;
    victim.kill(9);
    await victim.exited;
    const killedAt = Date.now();
    await waitFor(
      "the killed node's row to turn DOWN",
      async () => (await rowState(page, victim.address)) === "DOWN",
      5000,
    );
    console.log(
      `dashboard showed ${victim.address} DOWN ${Date.now() - killedAt} ms after SIGKILL`,
    );
    for (const id of ids.slice(0, 2)) {
      expect(await rowState(page, id)).toBe("UP");
    }

    expect(errors).toEqual([]);
    await page.close();
  },
  120_000,
);

run(
  "with client tokens the page is open, asks for a token and then shows the cluster",
  async () => {
    if (chromiumPath === undefined) throw new Error("no Chromium");
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "dkv-ui-"));
    const tokens = join(dir, "tokens");
    writeFileSync(tokens, "admin-token-0123456789 admin\n", { mode: 0o600 });
    const { launch, startNode } = await import("../support/cluster.ts");
    const solo = await launch((p) =>
      startNode(p, 0, ["--join", "127.0.0.1:1", "--auth-token-file", tokens])
    );
    const page = await browser!.newPage();
    await page.goto(`http://${solo.address}/ui`);
    await page.waitForSelector("#token-bar:not([hidden])", { timeout: 10_000 });
    await page.fill("#token-input", "admin-token-0123456789");
    await page.click("#token-form button");
    await waitFor("the member row", async () => (await rowState(page, solo.address)) === "UP");
    expect(await page.isHidden("#token-bar")).toBe(true);
    await page.close();
  },
  60_000,
);
