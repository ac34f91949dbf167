-- PUT or GET (BENCH_OP) of keys from a per-target list: thread i talks to target i mod #targets
-- (common.lua) and walks the keys of file BENCH_KEYS_DIR/keys-<that target's index>.txt, one key
-- per line. The harness writes the lists: for partition-aware routing, each key is listed for a
-- replica of it; for routing through a random member, for any member.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local values = c.value_pool(64)
local op = c.env("BENCH_OP", "put")
local put_headers = c.with_auth({ ["Content-Type"] = "text/plain" })
local get_headers = c.with_auth({})
local ntargets = 0
for _ in c.env("BENCH_TARGETS", ""):gmatch("[^,]+") do ntargets = ntargets + 1 end
local keys = nil
local n = 0

local function load_keys()
  local target = c.thread_id() % math.max(1, ntargets)
  local path = c.env("BENCH_KEYS_DIR", ".") .. "/keys-" .. target .. ".txt"
  keys = {}
  for line in io.lines(path) do keys[#keys + 1] = line end
  -- Threads on the same target start at different places of its list.
  n = math.floor(c.thread_id() / math.max(1, ntargets)) * 7919
end

function request()
  if keys == nil then load_keys() end
  n = n + 1
  local key = keys[(n % #keys) + 1]
  if op == "get" then return wrk.format("GET", "/kv/" .. key, get_headers) end
  return wrk.format("POST", "/kv/" .. key, put_headers, values[(n % #values) + 1])
end
