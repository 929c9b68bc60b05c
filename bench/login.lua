-- wrk script: sign in again and again with correct credentials, taking the users of
-- BENCH_USERS (comma-separated) in turn, so that the checks in flight at once are of different
-- users: a password check counts against its (user, address) pair while it runs, and more than
-- the pair's limit (5) of one user at once would be refused.
-- env: BENCH_USERS, BENCH_PASSWORD. Prints "STATUSES <code>=<count> ..." at the end.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local bodies = {}
for user in string.gmatch(os.getenv("BENCH_USERS"), "[^,]+") do
  table.insert(bodies, string.format('{"username":"%s","password":"%s"}', user, os.getenv("BENCH_PASSWORD")))
end
local next_body = 0
function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local line = "STATUSES"
  for _, thread in ipairs(threads) do
    for code, count in pairs(thread:get("statuses") or {}) do line = line .. " " .. code .. "=" .. count end
  end
  io.write(line .. "\n")
end
