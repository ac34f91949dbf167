-- Loader: write every key of the key space exactly once (thread i writes keys i, i+T, ...),
-- count the answers, and once all of a thread's writes are answered, stop the thread and drop a
-- file in BENCH_DONE_DIR. The harness runs wrk with a long -d as a safety bound and sends it
-- SIGINT when every thread is done (wrk's main thread sleeps the whole -d otherwise).
-- BENCH_API=dkv (POST /kv/{key}) or etcd (POST /v3/kv/put). While a thread waits for its last
-- answers its idle connections send a cheap request to a path that answers 404 (ignored).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local api = c.env("BENCH_API", "dkv")
local values = c.value_pool(64)
local text = { ["Content-Type"] = "text/plain" }
local json = { ["Content-Type"] = "application/json" }
local filler = "/bench-filler-no-such-route"
local done_dir = c.env("BENCH_DONE_DIR", nil)
local next_key, mine, finished
-- wrk calls request() once in thread 0 before the run to check the script, and throws the
-- request away: that call must not use up a key.
local verify_call
bench_ok, bench_failed = 0, 0

local function finish()
  if finished then return end
  finished = true
  if done_dir then
    local f = io.open(done_dir .. "/thread-" .. c.thread_id(), "w")
    if f then
      f:write(bench_ok, " ", bench_failed, "\n")
      f:close()
    end
  end
  wrk.thread:stop()
end

function init()
  next_key = c.thread_id()
  mine = 0
  for _ = c.thread_id(), c.keys - 1, c.nthreads do mine = mine + 1 end
  if api == "etcd" then
    for i, v in ipairs(values) do values[i] = c.base64(v) end
  end
  verify_call = c.thread_id() == 0
  if mine == 0 then finish() end
end

function request()
  if verify_call or next_key >= c.keys then
    verify_call = false
    return wrk.format("GET", filler)
  end
  local i = next_key
  next_key = next_key + c.nthreads
  local v = values[(i % #values) + 1]
  if api == "etcd" then
    local body = '{"key":"' .. c.base64(c.key(i)) .. '","value":"' .. v .. '"}'
    return wrk.format("POST", "/v3/kv/put", json, body)
  end
  return wrk.format("POST", "/kv/" .. c.key(i), text, v)
end

function response(status)
  if status == 404 then return end
  if status == 200 then bench_ok = bench_ok + 1 else bench_failed = bench_failed + 1 end
  if bench_ok + bench_failed >= mine then finish() end
end
