-- The student's ticket: the one they hold, else the next number. With a seed the
-- pre-queue is closed first (if still open), so a new ticket comes after it.
-- KEYS: room, tickets.  ARGV: student, [freeze seed]
local room, tickets = KEYS[1], KEYS[2]
if ARGV[2] and redis.call('HEXISTS', room, 'prequeue_size') == 0 then
  redis.call('HSET', room, 'prequeue_size', redis.call('HGET', room, 'issued') or '0')
  redis.call('HSETNX', room, 'seed', ARGV[2])
end
local ticket = redis.call('HGET', tickets, ARGV[1])
if not ticket then
  ticket = redis.call('HINCRBY', room, 'issued', 1)
  redis.call('HSET', tickets, ARGV[1], ticket)
end
return tonumber(ticket)
