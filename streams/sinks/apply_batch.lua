#!lua
-- Applies one batch atomically: check everything, fence on offsets, then state, then progress.
-- Redis runs a script as one transaction, but does NOT roll back a script that fails part-way:
-- writes before the error stay.  So nothing is written until every argument has been validated
-- and every key the batch writes has been found absent or of the type it will be written as.
-- After that, no command below can fail, and a crash at any instant leaves either none or all
-- of a batch's effects, the stored offsets describing exactly what was applied.
-- (The `#!lua` line makes Redis refuse the script as a whole when it is out of memory, before
-- it starts, instead of failing at its first write.)
-- KEYS[1] = progress hash.  ARGV[1] = JSON payload built by streams/sinks/redis_store.py; every
-- key in it was built by streams/keys.py.
-- On Redis Cluster (streams/sinks/cluster.py) the script runs once per input partition and every
-- key in the payload carries KEYS[1]'s hash tag {pN}: Redis 7 lets a script touch keys that are not
-- in KEYS when they hash to KEYS[1]'s slot, and a key of another slot makes validation's TYPE fail,
-- before the first write.
local progress = KEYS[1]
local ok, p = pcall(cjson.decode, ARGV[1])
if not ok or type(p) ~= 'table' then
  return {'invalid', 'payload is not a JSON object'}
end

-- ---- 1. Validation: read-only -------------------------------------------------------------------
local function finite(x)
  return type(x) == 'number' and x == x and x ~= math.huge and x ~= -math.huge
end
local function integer(x)
  return finite(x) and x == math.floor(x)
end
local function list(x)
  return type(x) == 'table'
end
local function scalar(x)  -- what redis.call accepts as an argument
  return type(x) == 'string' or finite(x)
end
local function numeric(x)  -- a number, or a string Redis reads as a finite number
  if type(x) == 'string' then x = tonumber(x) end
  return finite(x)
end
local function bound(x)  -- a score range bound: a number, -inf / +inf, or (number
  if x == '-inf' or x == '+inf' or x == 'inf' then return true end
  if type(x) == 'string' and string.sub(x, 1, 1) == '(' then x = string.sub(x, 2) end
  return numeric(x)
end
local function int_arg(x)
  if type(x) == 'string' then x = tonumber(x) end
  return integer(x)
end

local function check(cond, what)
  if not cond then error({invalid = what}) end
end

local writes = {}  -- key -> the Redis type the batch writes it as
local function writes_as(key, kind)
  check(type(key) == 'string' and #key > 0, 'key is not a string')
  local seen = writes[key]
  check(seen == nil or seen == kind, 'key ' .. key .. ' written as ' .. tostring(seen) .. ' and ' .. kind)
  writes[key] = kind
end

-- Commands operators may send (absolute writes), the type of the key they write, and a check of
-- their arguments after the key (a = the command, i = index of the first argument).
local function pairs_from(a, i, first_numeric)
  check((#a - i + 1) > 0 and (#a - i + 1) % 2 == 0, a[1] .. ' needs pairs')
  for j = i, #a, 2 do
    check(scalar(a[j]) and scalar(a[j + 1]), a[1] .. ' argument')
    if first_numeric then check(numeric(a[j]), a[1] .. ' score ' .. tostring(a[j])) end
  end
end
local COMMANDS = {
  HSET = {'hash', function(a) pairs_from(a, 3, false) end},
  HINCRBY = {'hash', function(a) check(#a == 4 and scalar(a[3]) and int_arg(a[4]), 'HINCRBY') end},
  HDEL = {'hash', function(a) for j = 3, #a do check(scalar(a[j]), 'HDEL') end end},
  ZADD = {'zset', function(a) pairs_from(a, 3, true) end},
  ZINCRBY = {'zset', function(a) check(#a == 4 and numeric(a[3]) and scalar(a[4]), 'ZINCRBY') end},
  ZREM = {'zset', function(a) for j = 3, #a do check(scalar(a[j]), 'ZREM') end end},
  ZREMRANGEBYSCORE = {'zset', function(a) check(#a == 4 and bound(a[3]) and bound(a[4]), 'ZREMRANGEBYSCORE') end},
  ZREMRANGEBYRANK = {'zset', function(a) check(#a == 4 and int_arg(a[3]) and int_arg(a[4]), 'ZREMRANGEBYRANK') end},
  LPUSH = {'list', function(a) check(#a >= 3, 'LPUSH'); for j = 3, #a do check(scalar(a[j]), 'LPUSH') end end},
  RPUSH = {'list', function(a) check(#a >= 3, 'RPUSH'); for j = 3, #a do check(scalar(a[j]), 'RPUSH') end end},
  LTRIM = {'list', function(a) check(#a == 4 and int_arg(a[3]) and int_arg(a[4]), 'LTRIM') end},
  SADD = {'set', function(a) check(#a >= 3, 'SADD'); for j = 3, #a do check(scalar(a[j]), 'SADD') end end},
  SET = {'string', function(a)
    check(#a == 3 or (#a == 5 and a[4] == 'EX' and int_arg(a[5]) and tonumber(a[5]) > 0), 'SET')
    check(scalar(a[3]), 'SET value')
  end},
  EXPIRE = {nil, function(a) check(#a == 3 and int_arg(a[3]) and tonumber(a[3]) > 0, 'EXPIRE') end},
  DEL = {nil, function(a) check(#a == 2, 'DEL') end},
}

local function validate()
  check(list(p.fence) and list(p.windows) and list(p.seen) and list(p.unseen) and list(p.ops), 'shape')
  check(list(p.progress) and list(p.notify) and list(p.weights) and #p.weights == 3, 'shape')
  for _, w in ipairs(p.weights) do check(finite(w), 'weight ' .. tostring(w)) end
  check(integer(p.ttl) and p.ttl > 0, 'ttl')
  check(type(p.windows_key) == 'string' and finite(p.windows_trim), 'windows key')
  for _, f in ipairs(p.fence) do check(type(f[1]) == 'string' and integer(f[2]), 'fence') end
  for _, w in ipairs(p.windows) do
    check(type(w[1]) == 'string' and integer(w[5]) and integer(w[6]) and list(w[7]) and integer(w[8]), 'window')
    writes_as(w[2], 'hash'); writes_as(w[3], 'zset'); writes_as(w[4], 'zset')
    check(#w[7] % 2 == 0, 'window members')
    for i = 1, #w[7], 2 do check(type(w[7][i]) == 'string' and finite(w[7][i + 1]), 'member') end
  end
  if #p.windows > 0 then writes_as(p.windows_key, 'zset') end
  for _, s in ipairs(p.seen) do
    writes_as(s[1], 'set')
    check(list(s[2]), 'seen ids')
    for _, id in ipairs(s[2]) do check(type(id) == 'string', 'seen id') end
  end
  for _, k in ipairs(p.unseen) do check(type(k) == 'string', 'unseen key') end
  for _, op in ipairs(p.ops) do
    check(list(op) and #op >= 2, 'command')
    local spec = COMMANDS[op[1]]
    check(spec ~= nil, 'command ' .. tostring(op[1]) .. ' is not allowed')
    check(type(op[2]) == 'string', op[1] .. ' key')
    spec[2](op)
    if spec[1] then writes_as(op[2], spec[1]) end
  end
  check(#p.progress % 2 == 0, 'progress')
  for _, v in ipairs(p.progress) do check(scalar(v), 'progress value') end
  check(#p.notify == 0 or (#p.notify == 2 and type(p.notify[1]) == 'string' and type(p.notify[2]) == 'string'), 'notify')
  local kind = redis.call('TYPE', progress).ok
  check(kind == 'none' or kind == 'hash', 'key ' .. progress .. ' is a ' .. kind .. ', expected hash')
  for key, want in pairs(writes) do
    kind = redis.call('TYPE', key).ok
    check(kind == 'none' or kind == want, 'key ' .. key .. ' is a ' .. kind .. ', expected ' .. want)
  end
end

local valid, err = pcall(validate)
if not valid then
  if type(err) == 'table' and err.invalid then return {'invalid', err.invalid} end
  return {'invalid', tostring(err)}
end

-- ---- 2. Fence: every partition in the batch must continue exactly where the store left it. ------
--    A worker that lost its partitions (rebalance, long pause) is refused here.
for _, f in ipairs(p.fence) do
  local cur = redis.call('HGET', progress, f[1])
  if cur == false then cur = -1 else cur = tonumber(cur) end
  if cur ~= f[2] then
    return {'fenced', f[1], tostring(cur), tostring(f[2])}
  end
end

-- ---- 3. Activity deltas; C and the score are computed from what the store holds. ----------------
local ttl = p.ttl
local wi, wc, wh = p.weights[1], p.weights[2], p.weights[3]
local boards = {}
for _, w in ipairs(p.windows) do
  local community, hkey, mkey, lkey = w[1], w[2], w[3], w[4]
  local interactions = redis.call('HINCRBY', hkey, 'interactions', w[5])
  local posts = redis.call('HINCRBY', hkey, 'posts', w[6])
  local members = w[7]
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
    redis.call('ZADD', p.windows_key, w[8], w[8])
  end
end
if #p.windows > 0 then  -- window starts older than the retention have no keys left
  redis.call('ZREMRANGEBYSCORE', p.windows_key, '-inf', '(' .. string.format('%d', p.windows_trim))
end

-- ---- 4. Ids applied per open window (de-duplication that survives restarts), closed ones dropped.
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

-- ---- 5. Operators' writes (absolute values), each validated above. ------------------------------
for _, op in ipairs(p.ops) do
  redis.call(unpack(op))
end

-- ---- 6. Progress last: next offsets, watermarks, open windows. ----------------------------------
if #p.progress > 0 then
  redis.call('HSET', progress, unpack(p.progress))
end
if #p.notify == 2 then
  redis.call('PUBLISH', p.notify[1], p.notify[2])
end
return {'ok'}
