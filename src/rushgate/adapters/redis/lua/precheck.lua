-- One round trip before an enrollment: the hint's verdict, its generations, and whether
-- the admission ticket was revoked. A tried idempotency key always proceeds (its retry
-- must reach the stored result); a new key is marked only when it proceeds unrevoked.
-- Hint fields per section: s:<id> seats, w:<id> waitlist, h:<id> has_waitlist,
-- g:<id> generation; `rebuild` is the term's rebuild generation.
-- KEYS: hints, [revoked], [marker].
-- ARGV: section, has revoked key ('1'/'0'), has marker ('1'/'0'), marker ttl ms
-- Returns {verdict (0 proceed, 1 section full, 2 waitlist full), term gen, section gen,
-- revoked (0/1)}.
local section = ARGV[1]
local n = 1
local revoked = 0
if ARGV[2] == '1' then
  n = n + 1
  revoked = redis.call('EXISTS', KEYS[n])
end
local marker = nil
if ARGV[3] == '1' then
  marker = KEYS[n + 1]
end
local hint = redis.call('HMGET', KEYS[1], 'rebuild', 'g:' .. section, 's:' .. section,
  'w:' .. section, 'h:' .. section)
local tried = marker ~= nil and redis.call('EXISTS', marker) == 1
local verdict = 0
if not tried and hint[3] and hint[4] and tonumber(hint[3]) <= 0 and tonumber(hint[4]) <= 0 then
  if hint[5] == '1' then
    verdict = 2
  else
    verdict = 1
  end
end
if verdict == 0 and marker ~= nil and revoked == 0 then
  redis.call('SET', marker, '1', 'PX', ARGV[4])
end
return {verdict, hint[1] or '0', hint[2] or '0', revoked}
