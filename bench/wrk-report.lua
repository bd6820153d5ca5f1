-- wrk script: prints one line "WRK_JSON {...}" with the totals, the error counts
-- and the latency distribution (microseconds) for bench/run.mjs to parse.
-- Request headers (Authorization) come from wrk's -H flags.

local percentiles = {}
for p = 1, 99 do percentiles[#percentiles + 1] = p end
for _, p in ipairs({ 99.5, 99.9, 99.99 }) do percentiles[#percentiles + 1] = p end

done = function(summary, latency, requests)
  local e = summary.errors
  local parts = {}
  for _, p in ipairs(percentiles) do
    parts[#parts + 1] = string.format('[%g,%d]', p, latency:percentile(p))
  end
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,"percentiles":[%s]}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(parts, ',')))
end
