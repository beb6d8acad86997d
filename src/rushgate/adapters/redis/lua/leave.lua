-- Revoke the ticket for revoke_ms and forget it; free the admitted position's active slot
-- only when the student still held that ticket, so a repeated leave frees nothing.
-- KEYS: tickets, room, batches, batch, revoked.  ARGV: student, ticket, revoke_ms, [position]
local tickets, room, batches, batch, revoked = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', revoked, '1', 'PX', ARGV[3])
else
  redis.call('DEL', revoked)
end
local held = redis.call('HGET', tickets, ARGV[1])
if not held or tonumber(held) ~= tonumber(ARGV[2]) then
  return 0
end
redis.call('HDEL', tickets, ARGV[1])
if not ARGV[4] then
  return 1
end
local position = tonumber(ARGV[4])
local last = redis.call('ZRANGEBYSCORE', batches, position, '+inf', 'LIMIT', 0, 1)[1]
if last then
  local found = redis.call('HMGET', batch, last .. ':first', last .. ':left')
  if tonumber(found[1]) <= position and tonumber(found[2]) > 0 then
    redis.call('HINCRBY', batch, last .. ':left', -1)
    redis.call('HINCRBY', room, 'active', -1)
  end
end
return 1
