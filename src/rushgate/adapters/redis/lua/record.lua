-- Apply what an enrollment transaction learned, that its section now refuses newcomers,
-- unless a drop or a rebuild happened since its precheck (either generation moved): then
-- the outcome may be stale and is dropped.
-- KEYS: hints.  ARGV: section, outcome, term generation, section generation
local hints, section, outcome = KEYS[1], ARGV[1], ARGV[2]
local gens = redis.call('HMGET', hints, 'rebuild', 'g:' .. section)
if (gens[1] or '0') ~= ARGV[3] or (gens[2] or '0') ~= ARGV[4] then
  return 0
end
local seats, waitlist, has = 's:' .. section, 'w:' .. section, 'h:' .. section
if outcome == 'section_full' then
  redis.call('HSET', hints, seats, 0, waitlist, 0, has, 0)
elseif outcome == 'waitlist_full' then
  redis.call('HSET', hints, seats, 0, waitlist, 0, has, 1)
else
  return redis.error_reply('unknown outcome ' .. outcome)
end
return 1
