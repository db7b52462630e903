-- wrk script for scripts/wrk-queue.sh: the buyers of a selling event. Run with as many
-- threads as connections (-tN -cN): each thread is one buyer with its own admitted user's
-- token ($WRK_TOKENS line $WRK_OFFSET + thread + 1), and reserves one seat of section GA,
-- releases that hold, again and again. Prints the holds made and the failed answers.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local n = tonumber(os.getenv("WRK_OFFSET") or "0") + id + 1
  local i = 0
  for line in io.lines(os.getenv("WRK_TOKENS")) do
    i = i + 1
    if i == n then token = line break end
  end
  event = os.getenv("WRK_EVENT")
  hold = nil
  holds, errors = 0, 0
end

function request()
  local headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
  if hold then
    return wrk.format("POST", "/v1/booking/release", headers, string.format('{"hold_id":"%s"}', hold))
  end
  local body = string.format('{"event_id":"%s","section":"GA","quantity":1}', event)
  return wrk.format("POST", "/v1/booking/reserve", headers, body)
end

function response(status, headers, body)
  if hold then
    -- Released (or not: either way the next request reserves again).
    hold = nil
    if status ~= 200 then errors = errors + 1 end
  elseif status == 201 then
    hold = body:match('"hold_id"%s*:%s*"([^"]+)"')
    holds = holds + 1
  else
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local h, e = 0, 0
  for _, t in ipairs(threads) do
    h = h + t:get("holds")
    e = e + t:get("errors")
  end
  io.write(string.format("holds %d errors %d\n", h, e))
end
