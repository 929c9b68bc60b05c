-- wrk script: exchange refresh tokens again and again. Each answer's new refresh token goes back
-- into a pool the next request takes from, so every request presents a live, unspent token.
-- env: BENCH_TOKENS, a file with one refresh token per line (more than connections).
-- Prints "STATUSES <code>=<count> ..." at the end.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  statuses = {}
  pool = {}
  for line in io.lines(os.getenv("BENCH_TOKENS")) do table.insert(pool, line) end
end
function request()
  local token = table.remove(pool, 1) or "pool-empty"
  local body = string.format('{"refresh_token":"%s"}', token)
  return wrk.format("POST", "/auth/refresh", { ["Content-Type"] = "application/json" }, body)
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local token = body and body:match('"refresh_token":"([^"]+)"')
  if token then table.insert(pool, token) end
end
function done(summary, latency, requests)
  local line = "STATUSES"
  for _, thread in ipairs(threads) do
    for code, count in pairs(thread:get("statuses") or {}) do line = line .. " " .. code .. "=" .. count end
  end
  io.write(line .. "\n")
end
