-- Compare-and-set: a new ticket at the end of the line if the student still holds `old`
-- (or none at all, having left meanwhile); otherwise the ticket they hold now.
-- KEYS: tickets, room.  ARGV: student, old
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held or tonumber(held) == tonumber(ARGV[2]) then
  held = redis.call('HINCRBY', KEYS[2], 'issued', 1)
  redis.call('HSET', KEYS[1], ARGV[1], held)
end
return tonumber(held)
