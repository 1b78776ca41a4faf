-- Applies one batch atomically: fence on offsets, then state, then progress.
-- Redis runs a script as one transaction, so a crash at any instant leaves either none or
-- all of a batch's effects, and the stored offsets always describe exactly what was applied.
-- KEYS[1] = progress hash.  ARGV[1] = JSON payload built by streams/sinks/redis_store.py.
local p = cjson.decode(ARGV[1])
local progress = KEYS[1]

-- 1. Fence: every partition in the batch must continue exactly where the store left it.
--    A worker that lost its partitions (rebalance, long pause) is refused here.
for _, f in ipairs(p.fence) do
  local cur = redis.call('HGET', progress, f[1])
  if cur == false then cur = -1 else cur = tonumber(cur) end
  if cur ~= f[2] then
    return {'fenced', f[1], tostring(cur), tostring(f[2])}
  end
end

-- 2. Activity deltas; C and the score are computed from what the store holds.
local a = p.activity
local ttl = p.ttl
local wi, wc, wh = a.weights[1], a.weights[2], a.weights[3]
local boards = {}
for _, w in ipairs(a.windows) do
  local community, suffix = w[1], w[2]
  local hkey = 'pulse:activity:' .. community .. suffix
  local mkey = 'pulse:lb:members:' .. community .. suffix
  local lkey = 'pulse:lb:communities' .. suffix
  local interactions = redis.call('HINCRBY', hkey, 'interactions', w[3])
  local posts = redis.call('HINCRBY', hkey, 'posts', w[4])
  local members = w[5]
  for i = 1, #members, 2 do
    redis.call('ZINCRBY', mkey, members[i + 1], members[i])
  end
  local participants = redis.call('ZCARD', mkey)
  local score = string.format('%.17g', wi * interactions + wc * participants + wh * posts)
  redis.call('HSET', hkey, 'participants', participants, 'score', score)
  redis.call('ZADD', lkey, score, community)
  redis.call('EXPIRE', hkey, ttl)
  redis.call('EXPIRE', mkey, ttl)
  if not boards[lkey] then  -- once per window start, not per community
    boards[lkey] = true
    redis.call('EXPIRE', lkey, ttl)
    redis.call('ZADD', a.windows_key, w[6], w[6])
  end
end

-- 3. Ids applied per open window (de-duplication that survives restarts), closed windows dropped.
for _, s in ipairs(p.seen) do
  local ids = s[2]
  for i = 1, #ids, 5000 do
    redis.call('SADD', s[1], unpack(ids, i, math.min(i + 4999, #ids)))
  end
  redis.call('EXPIRE', s[1], ttl)
end
for _, k in ipairs(p.unseen) do
  redis.call('DEL', k)
end

-- 4. Generic writes of later operators (absolute values: HSET / ZADD / LPUSH ...).
for _, op in ipairs(p.ops) do
  redis.call(unpack(op))
end

-- 5. Progress last: next offsets, watermarks, open windows.
if #p.progress > 0 then
  redis.call('HSET', progress, unpack(p.progress))
end
if p.notify then
  redis.call('PUBLISH', p.notify[1], p.notify[2])
end
return {'ok'}
