-- etcd JSON gateway: POST /v3/kv/range of a random preloaded key. BENCH_SERIALIZABLE=1 reads
-- the local member's state (no quorum round), like etcdctl get --consistency=s.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local headers = { ["Content-Type"] = "application/json" }
local serializable = c.env("BENCH_SERIALIZABLE", "1") == "1"
local bodies = {}

function init()
  math.randomseed(3000 + c.thread_id())
  for i = 0, c.keys - 1 do
    local extra = serializable and ',"serializable":true' or ""
    bodies[i] = '{"key":"' .. c.base64(c.key(i)) .. '"' .. extra .. "}"
  end
end

function request()
  return wrk.format("POST", "/v3/kv/range", headers, bodies[math.random(0, c.keys - 1)])
end
