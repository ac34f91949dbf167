/**
 * The dashboard's browser code. It is written here as one self-contained function, type-checked
 * with the rest (tsconfig has the DOM library), and served as its own source text inside the page
 * (page.ts): nothing to fetch from anywhere, so it works offline and in the compiled binary.
 * It must not refer to anything outside itself (it runs in the browser, not here).
 *
 * What it reads, all from the member that served the page (same origin):
 * - `/all-nodes` every second: members with role, state, incarnation, ring membership;
 * - `/cluster/status` every second: keys, hints, partitions moving per node (admin role when
 *   client tokens are on; without it that panel says so and the rest works);
 * - `/metrics` every second: this member's client request rate and mean latency, from
 *   dkv_http_requests_total and dkv_client_request_duration_seconds;
 * - `/ui/partitions` when the view's epoch changes: the partition map;
 * - the key browser: `GET /kv?prefix=` where a member lists keys (else `/kv/all-data` of this
 *   member, filtered by prefix), and GET / PUT / DELETE `/kv/{key}`.
 *
 * With --auth-token-file the page asks for a token once (kept in this browser's localStorage)
 * and sends it as `Authorization: Bearer`.
 */
export function dashboard(): void {
  const TOKEN_KEY = "dkv-dashboard-token";
  const POLL_MS = 1000;
  const HISTORY = 60;

  const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
    const el = document.getElementById(id);
    if (el === null) throw new Error(`no #${id}`);
    return el as T;
  };
  const esc = (s: unknown): string => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  let token = localStorage.getItem(TOKEN_KEY) ?? "";

  async function call(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (token !== "") headers.set("authorization", `Bearer ${token}`);
    const res = await fetch(path, { ...init, headers, cache: "no-store" });
    if (res.status === 401) askToken();
    return res;
  }

  function askToken(): void {
    $("token-bar").hidden = false;
  }
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $<HTMLInputElement>("token-input").value.trim();
    localStorage.setItem(TOKEN_KEY, token);
    $("token-bar").hidden = true;
    void tick();
  });

  // ---- members and cluster status ----------------------------------------------------------

  interface Member {
    id: string;
    ip: string;
    port: number;
    role: string;
    status: string;
    incarnation: number;
    inRing: boolean;
  }
  interface StatusRow {
    id: string;
    state: string;
    partitionsOwned?: number;
    keys?: number;
    tombstones?: number;
    hintsPending?: number;
    movingIn?: number;
    movingOut?: number;
    storeBytes?: number;
    rebalance?: { running: boolean };
    error?: string;
  }
  let statusById = new Map<string, StatusRow>();
  let statusNote = "";
  /** The most partitions seen moving per member during the current move (the bar's 100 %). */
  const movePeak = new Map<string, number>();
  let lastEpoch: number | null = null;

  async function loadMembers(): Promise<Member[]> {
    const res = await call("/all-nodes");
    if (!res.ok) throw new Error(`/all-nodes answered ${res.status}`);
    return ((await res.json()) as { allNodes: Member[] }).allNodes;
  }

  async function loadStatus(): Promise<void> {
    const res = await call("/cluster/status");
    if (res.status === 401 || res.status === 403) {
      statusNote = "keys, hints and moves need an admin token";
      statusById = new Map();
      return;
    }
    if (!res.ok) {
      statusNote = `/cluster/status answered ${res.status}`;
      return;
    }
    const body = (await res.json()) as { epoch: number | null; members: StatusRow[] };
    statusNote = "";
    statusById = new Map(body.members.map((m) => [m.id, m]));
    if (body.epoch !== lastEpoch) {
      lastEpoch = body.epoch;
      void loadPartitions();
    }
  }

  function renderMembers(members: Member[]): void {
    const rows = members.map((m) => {
      const s = statusById.get(m.id);
      const moving = (s?.movingIn ?? 0) + (s?.movingOut ?? 0);
      const peak = Math.max(movePeak.get(m.id) ?? 0, moving);
      if (moving === 0) movePeak.delete(m.id);
      else movePeak.set(m.id, peak);
      const pct = peak === 0 ? 100 : Math.round(((peak - moving) / peak) * 100);
      const bar = moving === 0
        ? '<span class="muted">idle</span>'
        : `<div class="bar" title="${moving} partitions still moving"><div style="width:${pct}%">` +
          `</div></div><span class="small">${s?.movingIn ?? 0} in, ${s?.movingOut ?? 0} out</span>`;
      const num = (v: number | undefined) => (v === undefined ? "–" : v.toLocaleString());
      return `<tr data-member="${esc(m.id)}" data-state="${esc(m.status)}">` +
        `<td class="id">${esc(m.id)}</td><td>${esc(m.role)}</td>` +
        `<td><span class="state state-${esc(m.status)}">${esc(m.status)}</span></td>` +
        `<td class="num">${esc(m.incarnation)}</td><td>${m.inRing ? "yes" : "no"}</td>` +
        `<td class="num">${num(s?.partitionsOwned)}</td><td class="num">${num(s?.keys)}</td>` +
        `<td class="num">${num(s?.hintsPending)}</td><td>${bar}</td></tr>`;
    });
    $("members-body").innerHTML = rows.join("");
    const up = members.filter((m) => m.status === "UP").length;
    $("members-summary").textContent = `${up} of ${members.length} members UP` +
      (statusNote === "" ? "" : ` · ${statusNote}`);
  }

  // ---- partition map -----------------------------------------------------------------------

  const PALETTE = [
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
  ];

  async function loadPartitions(): Promise<void> {
    const res = await call("/ui/partitions");
    if (!res.ok) return;
    const body = (await res.json()) as {
      epoch: number;
      replicationFactor: number;
      members: string[];
      table: string[][];
    };
    const color = new Map(body.members.map((id, i) => [id, PALETTE[i % PALETTE.length]!]));
    $("partitions-grid").innerHTML = body.table.map((owners, p) =>
      `<div class="cell" style="background:${color.get(owners[0] ?? "") ?? "#ddd"}" ` +
      `title="partition ${p}: ${esc(owners.join(", ") || "no owner")}"></div>`
    ).join("");
    $("partitions-legend").innerHTML = body.members.map((id) =>
      `<span><i style="background:${color.get(id)}"></i>${esc(id)} ` +
      `(${body.table.filter((o) => o[0] === id).length} primary)</span>`
    ).join("");
    $("partitions-summary").textContent =
      `${body.table.length} partitions, N=${body.replicationFactor}, epoch ${body.epoch}; ` +
      "colour = first replica, hover a cell for all of them";
  }

  // ---- request rate and latency from /metrics ----------------------------------------------

  interface Sample {
    atMs: number;
    requests: number;
    latencySum: number;
    latencyCount: number;
  }
  let previous: Sample | undefined;
  const rates: number[] = [];
  const latencies: number[] = [];

  function readMetrics(text: string, atMs: number): Sample {
    const sample: Sample = { atMs, requests: 0, latencySum: 0, latencyCount: 0 };
    for (const line of text.split("\n")) {
      if (line.startsWith("#")) continue;
      const space = line.lastIndexOf(" ");
      const value = Number(line.slice(space + 1));
      if (line.startsWith("dkv_http_requests_total{") && line.includes('route="/kv/{key}"')) {
        sample.requests += value;
      } else if (line.startsWith("dkv_client_request_duration_seconds_sum{")) {
        sample.latencySum += value;
      } else if (line.startsWith("dkv_client_request_duration_seconds_count{")) {
        sample.latencyCount += value;
      }
    }
    return sample;
  }

  async function loadMetrics(): Promise<void> {
    const res = await call("/metrics");
    if (!res.ok) return;
    const now = readMetrics(await res.text(), Date.now());
    if (previous !== undefined) {
      const dt = (now.atMs - previous.atMs) / 1000;
      const n = now.latencyCount - previous.latencyCount;
      rates.push(dt > 0 ? (now.requests - previous.requests) / dt : 0);
      latencies.push(n > 0 ? ((now.latencySum - previous.latencySum) / n) * 1000 : 0);
      while (rates.length > HISTORY) rates.shift();
      while (latencies.length > HISTORY) latencies.shift();
    }
    previous = now;
    $("rate").textContent = `${(rates[rates.length - 1] ?? 0).toFixed(1)} req/s`;
    $("latency").textContent = `${(latencies[latencies.length - 1] ?? 0).toFixed(2)} ms`;
    spark($<HTMLCanvasElement>("rate-chart"), rates, "#4e79a7");
    spark($<HTMLCanvasElement>("latency-chart"), latencies, "#e15759");
  }

  function spark(canvas: HTMLCanvasElement, values: number[], color: string): void {
    const g = canvas.getContext("2d");
    if (g === null) return;
    const w = canvas.width, h = canvas.height;
    g.clearRect(0, 0, w, h);
    const max = Math.max(1e-9, ...values);
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    values.forEach((v, i) => {
      // Right-aligned: the newest point at the right edge, a minute across.
      const x = w - ((values.length - 1 - i) / (HISTORY - 1)) * w;
      const y = h - 2 - (v / max) * (h - 4);
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
  }

  // ---- key browser -------------------------------------------------------------------------

  const out = $("kv-out");
  const show = (text: string, ok = true) => {
    out.textContent = text;
    out.className = ok ? "ok" : "err";
  };
  const keyPath = (k: string) => `/kv/${encodeURIComponent(k)}`;
  const keyInput = $<HTMLInputElement>("kv-key");
  const valueInput = $<HTMLTextAreaElement>("kv-value");

  async function answer(res: Response): Promise<string> {
    const text = await res.text();
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return text;
    }
  }

  $("kv-get").addEventListener("click", async () => {
    const res = await call(keyPath(keyInput.value));
    const text = await answer(res);
    show(`GET ${res.status}\n${text}`, res.ok);
    if (res.ok) {
      try {
        const body = JSON.parse(text) as { value?: string };
        if (typeof body.value === "string") valueInput.value = body.value;
      } catch {
        // Not JSON: the value box keeps what it had.
      }
    }
  });
  $("kv-put").addEventListener("click", async () => {
    const res = await call(keyPath(keyInput.value), { method: "PUT", body: valueInput.value });
    show(`PUT ${res.status}\n${await answer(res)}`, res.ok);
  });
  $("kv-delete").addEventListener("click", async () => {
    const res = await call(keyPath(keyInput.value), { method: "DELETE" });
    show(`DELETE ${res.status}\n${await answer(res)}`, res.ok);
  });
  $("kv-list").addEventListener("click", async () => {
    const prefix = $<HTMLInputElement>("kv-prefix").value;
    let keys: string[] | undefined;
    let source = "";
    const listed = await call(`/kv?prefix=${encodeURIComponent(prefix)}&limit=100`);
    if (listed.ok) {
      // The listing's page: `items` (GET /kv?prefix=, README "The data API").
      const body = (await listed.json()) as { items?: { key: string }[] };
      keys = body.items?.map((k) => k.key);
      source = "the cluster";
    }
    if (keys === undefined) {
      const all = await call("/kv/all-data");
      if (!all.ok) {
        show(`listing answered ${all.status}\n${await answer(all)}`, false);
        return;
      }
      keys = Object.keys((await all.json()) as Record<string, string>)
        .filter((k) => k.startsWith(prefix)).sort().slice(0, 100);
      source = "this member's replicas";
    }
    const list = $("kv-keys");
    list.innerHTML = keys.map((k) => `<li><a href="#" data-key="${esc(k)}">${esc(k)}</a></li>`)
      .join("") || '<li class="muted">no keys</li>';
    $("kv-keys-note").textContent = `${keys.length} key(s) from ${source}` +
      (keys.length === 100 ? " (first 100)" : "");
  });
  $("kv-keys").addEventListener("click", (e) => {
    const key = (e.target as HTMLElement).dataset.key;
    if (key === undefined) return;
    e.preventDefault();
    keyInput.value = key;
    $("kv-get").click();
  });

  // ---- the loop ----------------------------------------------------------------------------

  async function tick(): Promise<void> {
    try {
      const [members] = await Promise.all([loadMembers(), loadStatus(), loadMetrics()]);
      renderMembers(members);
      $("conn").textContent = `live · ${new Date().toLocaleTimeString()}`;
      $("conn").className = "live";
    } catch (e) {
      $("conn").textContent = `no answer: ${(e as Error).message}`;
      $("conn").className = "down";
    }
  }
  void tick();
  setInterval(() => void tick(), POLL_MS);
}
