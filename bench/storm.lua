-- wrk script: a storm of wrong passwords over 1,000 usernames from 50 client addresses, as a
-- trusted proxy reports them (X-Forwarded-For; the server trusts 127.0.0.1). Each address is
-- blocked after 50 failures, so the storm soon meets mostly 429s.
-- env: BENCH_BLOCKED=1 sends only requests of address 10.77.0.1 (blocked by then), to time a
-- blocked answer. Prints "STATUSES <code>=<count> ..." at the end.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  statuses = {}
  n = 0
  blocked_only = os.getenv("BENCH_BLOCKED") == "1"
end
function request()
  n = n + 1
  local address = blocked_only and 1 or (n % 50) + 1
  local headers = { ["Content-Type"] = "application/json", ["X-Forwarded-For"] = "10.77.0." .. address }
  local body = string.format('{"username":"storm%d","password":"wrong password"}', n % 1000)
  return wrk.format("POST", "/auth/login", headers, body)
end
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
