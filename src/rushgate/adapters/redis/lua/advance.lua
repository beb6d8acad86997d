-- One tick of the admitter, written only while the caller still holds the lock (fencing).
-- A batch of admission positions first..last lives as member `last` of the batches zset
-- (score last) plus fields `<last>:first`, `<last>:at`, `<last>:left` of the batch hash.
-- KEYS: lock, room, batches, batch.
-- ARGV: token, now_ms, grant, carry, admission_rate, expire_before_ms,
--       previous_tick_ms ('' for none), [freeze seed]
local lock, room, batches, batch = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function counters()
  -- the same fields, in the same order, as codec.COUNTER_FIELDS
  return redis.call('HMGET', room, 'issued', 'serving', 'prequeue_size', 'seed', 'active',
    'carry', 'admission_rate', 'last_tick_ms')
end
if redis.call('GET', lock) ~= ARGV[1] then
  return nil
end
-- The tick was planned on the counters of the previous tick; if that is no longer the
-- last one (a retried call that already applied), change nothing.
if (redis.call('HGET', room, 'last_tick_ms') or '') ~= ARGV[7] then
  return counters()
end
if ARGV[8] and redis.call('HEXISTS', room, 'prequeue_size') == 0 then
  redis.call('HSET', room, 'prequeue_size', redis.call('HGET', room, 'issued') or '0')
  redis.call('HSETNX', room, 'seed', ARGV[8])
end
-- batches are granted in position order, so the oldest is always first
local expire_before = tonumber(ARGV[6])
while true do
  local oldest = redis.call('ZRANGE', batches, 0, 0)[1]
  if not oldest or tonumber(redis.call('HGET', batch, oldest .. ':at')) >= expire_before then
    break
  end
  local left = tonumber(redis.call('HGET', batch, oldest .. ':left'))
  redis.call('HINCRBY', room, 'active', -left)
  redis.call('ZREM', batches, oldest)
  redis.call('HDEL', batch, oldest .. ':first', oldest .. ':at', oldest .. ':left')
end
local issued = tonumber(redis.call('HGET', room, 'issued') or '0')
local serving = tonumber(redis.call('HGET', room, 'serving') or '0')
local grant = math.max(math.min(tonumber(ARGV[3]), issued - serving), 0)
if grant > 0 then
  local last = serving + grant
  redis.call('ZADD', batches, last, last)
  redis.call('HSET', batch, last .. ':first', serving + 1, last .. ':at', ARGV[2],
    last .. ':left', grant)
  redis.call('HSET', room, 'serving', last)
  redis.call('HINCRBY', room, 'active', grant)
end
redis.call('HSET', room, 'carry', ARGV[4], 'admission_rate', ARGV[5], 'last_tick_ms', ARGV[2])
return counters()
