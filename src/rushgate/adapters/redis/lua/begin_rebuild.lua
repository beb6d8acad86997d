-- Start a rebuild: bump the term's generation (voiding records in flight) and return it
-- with every section's generation, read at the same instant.
-- KEYS: hints.  Returns {term gen, section, gen, section, gen, ...}.
local out = {redis.call('HINCRBY', KEYS[1], 'rebuild', 1)}
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'g:' then
    out[#out + 1] = string.sub(fields[i], 3)
    out[#out + 1] = fields[i + 1]
  end
end
return out
