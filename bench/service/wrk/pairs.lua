-- wrk script for the RSS soak: a fixed set of <ids> request ids, each used over and over by a
-- test call then a mirror call (request 2k is the test call of id k mod ids, 2k+1 its mirror).
--   args: <ids> <host> [stack header] [test value] [mirror value]
function init(args)
  nids = tonumber(args[1] or "1000")
  hdrs = { Host = args[2] } -- wrk.format(nil, nil, hdrs) sends hdrs instead of wrk.headers
  sh = args[3] or "x-mirror-stack"
  tv = args[4] or "test"
  mv = args[5] or "mirror"
  i = 0
end

function request()
  local k = math.floor(i / 2) % nids
  hdrs["x-request-id"] = "soak-" .. k
  if i % 2 == 0 then hdrs[sh] = tv else hdrs[sh] = mv end
  i = i + 1
  return wrk.format(nil, nil, hdrs)
end
