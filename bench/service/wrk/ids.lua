-- wrk script (run with -t1 so the counter is dense): request number g = offset + i (i = 1, 2, …)
-- carries a request id chosen from <ranges>, the stack header and the upstream Host.
--   args: <stack|-> <ranges> <offset> <host|-> [stack header]
--   ranges: "prefix:first:count,…" — ids prefix<first> … prefix<first+count-1>, then the next
--           range. Count 0 means unbounded (every request a fresh id). Past the last range, ids
--           "exhausted-<g>" (a mirror call with one will miss).
-- Note: wrk calls request() once before the first request it sends and drops that one, so the
-- first id of a run (g = offset + 1) is never sent.
-- done() prints "issued <n>" (requests generated) so the caller can continue at offset + n.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  -- wrk.format(nil, nil, hdrs) sends hdrs instead of wrk.headers, so everything goes in hdrs
  local stack = args[1]
  offset = tonumber(args[3] or "0")
  hdrs = {}
  if args[4] and args[4] ~= "-" then hdrs["Host"] = args[4] end
  if stack and stack ~= "-" then hdrs[args[5] or "x-mirror-stack"] = stack end
  prefixes, firsts, limits = {}, {}, {}
  for p, f, c in string.gmatch(args[2] or "bench-:1:0", "([^:,]+):(%d+):(%d+)") do
    table.insert(prefixes, p)
    table.insert(firsts, tonumber(f))
    table.insert(limits, tonumber(c))
  end
  r, base = 1, 0 -- current range and the g at which it starts (exclusive)
  i = 0
end

local function id_for(g)
  while r <= #prefixes and limits[r] > 0 and g > base + limits[r] do
    base = base + limits[r]
    r = r + 1
  end
  if r > #prefixes then return "exhausted-" .. g end
  return prefixes[r] .. (firsts[r] + g - base - 1)
end

function request()
  i = i + 1
  hdrs["x-request-id"] = id_for(offset + i)
  return wrk.format(nil, nil, hdrs)
end

function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + (t:get("i") or 0) end
  io.write("issued " .. n .. "\n")
  -- the tail in µs, finer than wrk's own table (p90, p99, p99.9, max)
  io.write(string.format("tail %d %d %d %d\n", latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
