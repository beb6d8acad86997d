-- Before a drop: forget the section's counts and bump its generation, together, so no
-- precheck sees the old "full" under the new generation.
-- KEYS: hints.  ARGV: section
redis.call('HDEL', KEYS[1], 's:' .. ARGV[1], 'w:' .. ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'g:' .. ARGV[1], 1)
