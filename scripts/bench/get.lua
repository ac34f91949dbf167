-- GET /kv/{key}: a uniformly random key of the preloaded key space (see common.lua).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local headers = c.with_auth({})

function init()
  math.randomseed(1000 + c.thread_id())
end

function request()
  return wrk.format("GET", "/kv/" .. c.key(math.random(0, c.keys - 1)), headers)
end
