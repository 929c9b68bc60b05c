-- wrk script: sign in again and again with one user's correct credentials.
-- env: BENCH_USER, BENCH_PASSWORD. Prints "STATUSES <code>=<count> ..." at the end.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"username":"%s","password":"%s"}', os.getenv("BENCH_USER"), os.getenv("BENCH_PASSWORD"))

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
