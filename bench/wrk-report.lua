-- wrk script: prints one line "WRK_JSON {...}" with the totals, the error counts
-- and the latency distribution (microseconds) for bench/run.mjs to parse.
-- Request headers (Authorization) come from wrk's -H flags; with WRK_TOKENS set
-- to a file of tokens (one per line), each request instead carries the next token
-- of its thread's share of the file, so that no token is sent twice (the number of
-- tokens sent again after a thread ran out of its share is reported as "reused").

local threads = {}
local next_id = 0

setup = function(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  threads[#threads + 1] = thread
end

init = function(args)
  -- WRK_BODY_FILE: every request is a POST of that file's bytes.
  local body_file = os.getenv("WRK_BODY_FILE")
  if body_file then
    local f = assert(io.open(body_file, "rb"))
    wrk.body = f:read("*a")
    f:close()
    wrk.method = "POST"
  end
  local file = os.getenv("WRK_TOKENS")
  if not file then return end
  local all = {}
  for line in io.lines(file) do
    if #line > 0 then all[#all + 1] = line end
  end
  local count = tonumber(os.getenv("WRK_THREADS") or "1")
  local share = math.floor(#all / count)
  tokens = {}
  for i = id * share + 1, (id + 1) * share do tokens[#tokens + 1] = all[i] end
  -- Globals of this thread's Lua state: setup() set `id`, done() reads `reused`.
  position = 0
  reused = 0
  local wrapped = false
  request = function()
    position = position + 1
    if position > #tokens then
      position = 1
      wrapped = true
    end
    if wrapped then reused = reused + 1 end
    return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. tokens[position] })
  end
end

local percentiles = {}
for p = 1, 99 do percentiles[#percentiles + 1] = p end
for _, p in ipairs({ 99.5, 99.9, 99.99 }) do percentiles[#percentiles + 1] = p end

done = function(summary, latency, requests)
  local e = summary.errors
  local parts = {}
  for _, p in ipairs(percentiles) do
    parts[#parts + 1] = string.format('[%g,%d]', p, latency:percentile(p))
  end
  local reused = 0
  for _, thread in ipairs(threads) do reused = reused + (thread:get("reused") or 0) end
  io.write(string.format(
    'WRK_JSON {"requests":%d,"reused":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,"percentiles":[%s]}}\n',
    summary.requests, reused, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(parts, ',')))
end
