-- wrk script for scripts/wrk-reserve.sh: POST /v1/booking/reserve {event_id, section, quantity}
-- as a different user on every request (tokens minted by the shell script, one per line in
-- $WRK_TOKENS), quantity 1 or 2 in turn; counts answers by status and the tickets named in
-- 201 answers, per thread, and prints the totals at the end.
local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for line in io.lines(os.getenv("WRK_TOKENS")) do tokens[#tokens + 1] = line end
  event = os.getenv("WRK_EVENT")
  section = os.getenv("WRK_SECTION") or "GA"
  -- Each wrk process starts at its own offset (three run at once, one per node); the
  -- threads of one process are spread apart too.
  n = tonumber(os.getenv("WRK_OFFSET") or "0") + thread_index * 40000
  counts = {}
  tickets = 0
end

function request()
  n = n + 1
  local q = (n % 2) + 1
  local body = string.format('{"event_id":"%s","section":"%s","quantity":%d}', event, section, q)
  local headers = {
    ["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1],
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", "/v1/booking/reserve", headers, body)
end

function response(status, headers, body)
  local key = tostring(status)
  if status ~= 201 then
    local code = body and body:match('"code"%s*:%s*"([^"]+)"')
    if code then key = key .. " " .. code end
  else
    local list = body:match('"tickets"%s*:%s*%[(.-)%]')
    if list then
      for _ in list:gmatch('"[^"]+"') do tickets = tickets + 1 end
    end
  end
  counts[key] = (counts[key] or 0) + 1
end

function done(summary, latency, requests)
  local all, total_tickets = {}, 0
  for _, t in ipairs(threads) do
    total_tickets = total_tickets + t:get("tickets")
    for k, v in pairs(t:get("counts")) do all[k] = (all[k] or 0) + v end
  end
  for k, v in pairs(all) do io.write(string.format("answers %s: %d\n", k, v)) end
  io.write(string.format("tickets in 201 answers: %d\n", total_tickets))
  io.write(string.format("latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
