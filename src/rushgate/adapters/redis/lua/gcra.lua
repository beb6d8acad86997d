-- GCRA rate limits, the semantics of adapters/memory/rate_limits.py, for one or several
-- budgets at once (all-or-nothing). Time is Redis's own (TIME), so nodes whose clocks
-- disagree still share one budget exactly.
-- KEYS: one per budget (its theoretical arrival time, seconds, as a string).
-- ARGV: commit (1: count the request, 0: only look), then per key:
--       burst, interval (seconds per request), cost.
-- Returns per key {allowed (1/0), retry_after (seconds, string), remaining}; when commit
-- is 1 and every key allows, each key is set to its new TAT and expires when its budget
-- is full again.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local commit = ARGV[1] == '1'
local out = {}
local new_tats = {}
local all_allowed = true
-- Times closer than this count as equal (float error of epoch seconds; as in memory).
local tolerance = 0.000001
for i = 1, #KEYS do
  local burst = tonumber(ARGV[2 + (i - 1) * 3])
  local interval = tonumber(ARGV[3 + (i - 1) * 3])
  local cost = tonumber(ARGV[4 + (i - 1) * 3])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < now then
    tat = now
  end
  local new_tat = tat + cost * interval
  local allow_at = new_tat - burst * interval
  if allow_at - now > tolerance then
    all_allowed = false
    out[i] = {0, string.format('%.6f', allow_at - now), 0}
  else
    out[i] = {1, '0', math.max(math.floor((now - allow_at + tolerance) / interval), 0)}
  end
  new_tats[i] = new_tat
end
if commit and all_allowed then
  for i = 1, #KEYS do
    local ttl_ms = math.ceil((new_tats[i] - now) * 1000)
    if ttl_ms < 1 then
      ttl_ms = 1
    end
    redis.call('SET', KEYS[i], string.format('%.6f', new_tats[i]), 'PX', ttl_ms)
  end
end
return out
