-- wrk script for scripts/wrk-queue.sh: a crowd joining an event's waiting queue,
-- POST /v1/events/$WRK_EVENT/queue as a different user on every request (tokens one per line
-- in $WRK_TOKENS, from line $WRK_OFFSET on). Prints the answers by status.
local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for line in io.lines(os.getenv("WRK_TOKENS")) do tokens[#tokens + 1] = line end
  path = "/v1/events/" .. os.getenv("WRK_EVENT") .. "/queue"
  n = tonumber(os.getenv("WRK_OFFSET") or "0") + thread_index * 100000
  counts = {}
end

function request()
  n = n + 1
  return wrk.format("POST", path, { ["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1] }, "")
end

function response(status, headers, body)
  local key = tostring(status)
  counts[key] = (counts[key] or 0) + 1
end

function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do all[k] = (all[k] or 0) + v end
  end
  for k, v in pairs(all) do io.write(string.format("answers %s: %d\n", k, v)) end
  io.write(string.format("latency p50 %.2f ms, p99 %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
