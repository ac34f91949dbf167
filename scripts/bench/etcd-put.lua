-- etcd JSON gateway: POST /v3/kv/put, same key walk and values as put.lua (base64 as etcd wants).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local headers = { ["Content-Type"] = "application/json" }
local values = {}
local keys = {}
local n = 0

function init()
  for i, v in ipairs(c.value_pool(64)) do values[i] = c.base64(v) end
  for i = 0, c.keys - 1 do keys[i] = c.base64(c.key(i)) end
end

function request()
  local i = (c.thread_id() + n * c.nthreads) % c.keys
  n = n + 1
  local body = '{"key":"' .. keys[i] .. '","value":"' .. values[(n % #values) + 1] .. '"}'
  return wrk.format("POST", "/v3/kv/put", headers, body)
end
