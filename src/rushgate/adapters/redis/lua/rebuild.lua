-- Set hints from database counts, only if no later rebuild began, and per section only
-- if no drop bumped its generation since begin_rebuild (a fresher truth).
-- KEYS: hints.
-- ARGV: term generation, then per section: id, generation seen, seats, waitlist,
-- has_waitlist ('1'/'0')
local hints = KEYS[1]
if (redis.call('HGET', hints, 'rebuild') or '0') ~= ARGV[1] then
  return 0
end
for i = 2, #ARGV, 5 do
  local section = ARGV[i]
  if (redis.call('HGET', hints, 'g:' .. section) or '0') == ARGV[i + 1] then
    redis.call('HSET', hints, 's:' .. section, ARGV[i + 2], 'w:' .. section, ARGV[i + 3],
      'h:' .. section, ARGV[i + 4])
  end
end
return 1
