-- When the batch holding an admission position was granted; nil when none holds it.
-- Read in one script so a concurrent expiry cannot split the zset and hash reads.
-- KEYS: batches, batch.  ARGV: position
local last = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'LIMIT', 0, 1)[1]
if not last then
  return nil
end
local found = redis.call('HMGET', KEYS[2], last .. ':first', last .. ':at')
if tonumber(found[1]) > tonumber(ARGV[1]) then
  return nil
end
return found[2]
