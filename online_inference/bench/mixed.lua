-- wrk script for the soak: rotate through the JSON bodies in $BODIES_FILE (one per line), tally
-- every status code across threads, print a JSON summary at the end.
local threads = {}
local bodies = {}
for line in io.lines(os.getenv("BODIES_FILE")) do table.insert(bodies, line) end
local headers = {["Content-Type"] = "application/json"}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
  n = 0
end

function request()
  n = n + 1
  return wrk.format("POST", "/predict", headers, bodies[(n % #bodies) + 1])
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("counts")) do
      total[status] = (total[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(total) do table.insert(parts, string.format('"%d": %d', status, count)) end
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests": %d, "socket_errors": %d, "timeouts": %d, "p99_us": %d, "statuses": {%s}}\n',
    summary.requests, e.connect + e.read + e.write, e.timeout, latency:percentile(99), table.concat(parts, ", ")))
end
