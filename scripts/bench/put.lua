-- POST /kv/{key} with a 100-byte (BENCH_VALUE_BYTES) body: each thread walks its own stride of
-- the key space (thread i writes keys i, i+T, i+2T, ...) and cycles through distinct values.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local values = c.value_pool(64)
local headers = c.with_auth({ ["Content-Type"] = "text/plain" })
local n = 0

function request()
  local i = (c.thread_id() + n * c.nthreads) % c.keys
  n = n + 1
  return wrk.format("POST", "/kv/" .. c.key(i), headers, values[(n % #values) + 1])
end
