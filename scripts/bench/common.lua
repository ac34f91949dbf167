-- Shared by every wrk script of scripts/bench.ts. Everything comes from environment variables
-- set by the harness (wrk passes its environment to every thread's Lua state):
--   BENCH_TARGETS      host:port,host:port,... ; thread i talks to target i mod #targets
--   BENCH_THREADS      wrk's -t (so each thread knows its stride for key ranges)
--   BENCH_KEYS         key space size (keys are BENCH_PREFIX .. zero-padded index)
--   BENCH_PREFIX       key prefix
--   BENCH_VALUE_BYTES  value size in bytes
--   BENCH_RATE         optional: total requests/s to aim for (defines delay(), see below)
-- `done` prints one line "BENCH_RESULT {json}" that the harness parses.
local M = {}

function M.env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

function M.num(name, default)
  return tonumber(M.env(name, tostring(default)))
end

M.keys = M.num("BENCH_KEYS", 10000)
M.prefix = M.env("BENCH_PREFIX", "bench-")
M.value_bytes = M.num("BENCH_VALUE_BYTES", 100)
M.nthreads = M.num("BENCH_THREADS", 1)
-- BENCH_AUTH: optional Authorization header value (members started with --auth-token-file).
M.auth = M.env("BENCH_AUTH", nil)

-- `h` with the Authorization header added when BENCH_AUTH is set.
function M.with_auth(h)
  if M.auth ~= nil then h["Authorization"] = M.auth end
  return h
end

function M.key(i)
  return M.prefix .. string.format("%07d", i)
end

-- A pool of distinct values of exactly value_bytes bytes: varied content, no per-request cost.
function M.value_pool(n)
  local pool = {}
  local alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
  for i = 1, n do
    local c = alphabet:sub((i % #alphabet) + 1, (i % #alphabet) + 1)
    local tag = string.format("-%06d", i)
    local fill = math.max(0, M.value_bytes - #tag)
    pool[i] = (string.rep(c, fill) .. tag):sub(1, M.value_bytes)
  end
  return pool
end

-- Standard base64 (etcd's JSON gateway wants keys and values base64-encoded).
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function M.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = B64:sub(c1 + 1, c1 + 1) .. B64:sub(c2 + 1, c2 + 1) ..
      (b and B64:sub(c3 + 1, c3 + 1) or "=") .. (c and B64:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

-- Runs in wrk's main Lua state: point each thread at one target, remember threads for `done`.
local threads = {}
local targets = {}
for t in M.env("BENCH_TARGETS", ""):gmatch("[^,]+") do targets[#targets + 1] = t end

function setup(thread)
  local i = #threads
  threads[#threads + 1] = thread
  thread:set("thread_id", i)
  if #targets > 0 then
    local t = targets[(i % #targets) + 1]
    local host, port = t:match("^(.*):(%d+)$")
    thread.addr = wrk.lookup(host, port)[1]
  end
end

-- Counters a script may keep per thread (ok / failed answers); summed in `done`.
function M.thread_id()
  return thread_id or 0
end

local function json_number(x)
  if x == nil or x ~= x then return "null" end
  return string.format("%.3f", x)
end

function done(summary, latency, requests)
  local ok, failed = 0, 0
  for _, t in ipairs(threads) do
    ok = ok + (tonumber(t:get("bench_ok")) or 0)
    failed = failed + (tonumber(t:get("bench_failed")) or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"durationUs":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latencyUs":{"p50":%s,"p90":%s,"p99":%s,"mean":%s,"max":%s},' ..
      '"ok":%d,"failed":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    json_number(latency:percentile(50)), json_number(latency:percentile(90)),
    json_number(latency:percentile(99)), json_number(latency.mean), json_number(latency.max),
    ok, failed))
end

-- Open-loop-ish pacing: with BENCH_RATE set, every connection waits between requests so that
-- all of them together send about BENCH_RATE requests/s. wrk's delay() is in whole ms, so the
-- wait is rounded up or down at random to hit the mean. BENCH_RATE_ADJUST_MS (calibrated by the
-- harness) subtracts the time a request itself takes.
local rate = M.num("BENCH_RATE", 0)
if rate > 0 then
  local conns_per_thread = M.num("BENCH_CONNECTIONS", 1) / M.nthreads
  local total_conns = conns_per_thread * M.nthreads
  local period_ms = total_conns * 1000 / rate - M.num("BENCH_RATE_ADJUST_MS", 0)
  if period_ms < 0 then period_ms = 0 end
  function delay()
    return math.floor(period_ms + math.random())
  end
end

return M
