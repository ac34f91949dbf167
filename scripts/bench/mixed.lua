-- 90 % GET of a random key, 10 % POST of a random key with a varied 100-byte value.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local values = c.value_pool(64)
local headers = { ["Content-Type"] = "text/plain" }

function init()
  math.randomseed(2000 + c.thread_id())
end

function request()
  local key = "/kv/" .. c.key(math.random(0, c.keys - 1))
  if math.random() < 0.1 then
    return wrk.format("POST", key, headers, values[math.random(1, #values)])
  end
  return wrk.format("GET", key)
end
