-- Release the lock only when this token holds it (never a successor's).
-- KEYS: lock.  ARGV: token
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
