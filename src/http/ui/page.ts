/**
 * The dashboard page: HTML, CSS and the browser code (dashboard.ts) in one document, built once.
 * No external resource of any kind (no CDN, no font, no image): it works offline.
 */
import { dashboard } from "./dashboard.ts";

const STYLE = `
:root { --fg:#1f2933; --muted:#7b8794; --line:#e4e7eb; --bg:#f5f7fa; --card:#fff;
  --up:#2f9e44; --suspect:#f08c00; --down:#e03131; --left:#868e96; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg);
  background:var(--bg); }
header { display:flex; align-items:center; gap:16px; padding:12px 20px; background:#102a43;
  color:#fff; }
header h1 { font-size:18px; margin:0; letter-spacing:.5px; }
header .who { color:#bcccdc; font-size:13px; }
#conn { margin-left:auto; font-size:12px; padding:2px 8px; border-radius:10px; }
#conn.live { background:#2f9e44; } #conn.down { background:#e03131; }
main { display:grid; grid-template-columns: minmax(0,3fr) minmax(0,2fr); gap:16px; padding:16px 20px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
section.wide { grid-column: 1 / -1; }
h2 { font-size:14px; margin:0 0 8px; text-transform:uppercase; letter-spacing:.6px; color:#334e68; }
.muted, .small { color:var(--muted); } .small { font-size:12px; margin-left:6px; }
table { width:100%; border-collapse:collapse; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
th { font-size:12px; color:var(--muted); font-weight:600; }
td.num { text-align:right; font-variant-numeric: tabular-nums; }
td.id { font-family: ui-monospace, monospace; }
.state { padding:2px 8px; border-radius:10px; color:#fff; font-size:12px; font-weight:600; }
.state-UP { background:var(--up); } .state-SUSPECT { background:var(--suspect); }
.state-DOWN { background:var(--down); } .state-LEFT { background:var(--left); }
.bar { display:inline-block; width:90px; height:8px; background:var(--line); border-radius:4px;
  vertical-align:middle; overflow:hidden; } .bar div { height:100%; background:#4e79a7; }
#partitions-grid { display:grid; grid-template-columns: repeat(32, 1fr); gap:2px; }
.cell { aspect-ratio: 1; border-radius:2px; min-width:6px; }
#partitions-legend { display:flex; flex-wrap:wrap; gap:12px; margin-top:8px; font-size:12px; }
#partitions-legend i { display:inline-block; width:10px; height:10px; margin-right:4px;
  border-radius:2px; }
.figures { display:flex; gap:24px; }
.figure b { display:block; font-size:22px; font-variant-numeric: tabular-nums; }
canvas { width:100%; height:50px; }
.kv-row { display:flex; gap:8px; margin-bottom:8px; }
input, textarea { font:inherit; padding:5px 8px; border:1px solid #cbd2d9; border-radius:4px;
  flex:1; min-width:0; }
textarea { height:56px; width:100%; }
button { font:inherit; padding:5px 12px; border:0; border-radius:4px; background:#243b53;
  color:#fff; cursor:pointer; } button:hover { background:#334e68; }
button.danger { background:#c92a2a; }
#kv-out { font-family: ui-monospace, monospace; font-size:12px; white-space:pre-wrap;
  background:var(--bg); padding:8px; border-radius:4px; min-height:40px; margin:8px 0 0; }
#kv-out.err { color:#c92a2a; }
#kv-keys { max-height:150px; overflow:auto; margin:6px 0 0; padding-left:18px;
  font-family: ui-monospace, monospace; font-size:12px; }
#token-bar { background:#fff3bf; padding:10px 20px; border-bottom:1px solid #ffe066; }
`;

const BODY = `
<header>
  <h1>dkv</h1>
  <span class="who" id="who"></span>
  <span id="conn">connecting…</span>
</header>
<div id="token-bar" hidden>
  <form id="token-form">
    This cluster needs a client token (--auth-token-file): it is kept in this browser and sent as
    <code>Authorization: Bearer</code>.
    <input id="token-input" type="password" placeholder="token" autocomplete="off">
    <button type="submit">Use token</button>
  </form>
</div>
<main>
  <section class="wide">
    <h2>Members</h2>
    <table>
      <thead><tr><th>member</th><th>role</th><th>state</th><th>incarnation</th><th>in ring</th>
        <th>partitions</th><th>keys</th><th>hints</th><th>rebalance</th></tr></thead>
      <tbody id="members-body"></tbody>
    </table>
    <p class="muted" id="members-summary"></p>
  </section>
  <section>
    <h2>Partition map</h2>
    <div id="partitions-grid"></div>
    <div id="partitions-legend"></div>
    <p class="muted" id="partitions-summary"></p>
  </section>
  <section>
    <h2>Requests (this member)</h2>
    <div class="figures">
      <div class="figure"><span class="muted">key requests</span><b id="rate">–</b></div>
      <div class="figure"><span class="muted">mean latency</span><b id="latency">–</b></div>
    </div>
    <canvas id="rate-chart" width="400" height="50"></canvas>
    <canvas id="latency-chart" width="400" height="50"></canvas>
    <p class="muted small">polled every second from /metrics; last 60 s</p>
  </section>
  <section class="wide">
    <h2>Key browser</h2>
    <div class="kv-row">
      <input id="kv-prefix" placeholder="prefix">
      <button id="kv-list">List</button>
    </div>
    <span class="muted small" id="kv-keys-note"></span>
    <ul id="kv-keys"></ul>
    <div class="kv-row">
      <input id="kv-key" placeholder="key">
      <button id="kv-get">Get</button>
      <button id="kv-put">Put</button>
      <button id="kv-delete" class="danger">Delete</button>
    </div>
    <textarea id="kv-value" placeholder="value"></textarea>
    <pre id="kv-out"></pre>
  </section>
</main>
`;

/** The whole page; `who` (this member's role and id) goes in the header. */
export function dashboardPage(who: string): string {
  const title = who.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dkv · ${title}</title>
<style>${STYLE}</style>
</head>
<body>
${BODY.replace('<span class="who" id="who"></span>', `<span class="who" id="who">${title}</span>`)}
<script>(${dashboard.toString()})();</script>
</body>
</html>
`;
}
