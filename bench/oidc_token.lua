-- wrk script: exchange authorization codes at the OpenID Connect token endpoint, each code once.
-- env: BENCH_CODES (a file with one code per line), BENCH_BASIC (the app's Basic credentials),
-- BENCH_REDIRECT, BENCH_VERIFIER (the PKCE verifier every code was made with).
-- Prints "STATUSES <code>=<count> ..." at the end; a thread out of codes sends "pool-empty" (400).
local threads = {}
function setup(thread) table.insert(threads, thread) end
local function escape(text)
  return (text:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end
function init(args)
  statuses = {}
  pool = {}
  for line in io.lines(os.getenv("BENCH_CODES")) do table.insert(pool, line) end
  headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC"),
  }
  tail = "&redirect_uri=" .. escape(os.getenv("BENCH_REDIRECT")) .. "&code_verifier=" .. os.getenv("BENCH_VERIFIER")
end
function request()
  local code = table.remove(pool) or "pool-empty"
  return wrk.format("POST", "/oauth/token", headers, "grant_type=authorization_code&code=" .. code .. tail)
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
