-- collab.budget (report / assist), the decision and the increment in one atomic step on Redis.
-- Must stay equivalent to collab/budget.py: tests/cloud_gateway/test_store_agreement.py checks it.
-- KEYS[1] policy hash, KEYS[2] counters hash, KEYS[3] idempotency key (op report/assist/complete),
-- KEYS[4] scope hash {help, closed} of a report (report: its own key; assist: the report it names).
-- ARGV[1] op: report | assist | get | complete; ARGV[2] task; ARGV[3] idempotency TTL (s);
-- ARGV[4] subject (assist: a digest of the example id, checked on replay by the caller; else "");
-- ARGV[5] now (ms, the store's clock), ARGV[6..9] collab.budget.Limits: responses_rate,
--   responses_burst, assists_rate, assists_burst;
--   report: ARGV[10] responses, ARGV[11] help_requests (device), ARGV[12] offline_help;
--   assist: ARGV[10] help requests served, ARGV[11] "1" if it names a report;
--   complete: ARGV[10] record, ARGV[11] tokens.
-- Returns the JSON answer (cloud_gateway/store/base.py `encode`), remembered under KEYS[3].
local FIELDS = {'responses', 'help_requests', 'cloud_calls', 'denials', 'tokens', 'credit_ppm',
                'win_responses', 'win_help', 'prev_responses', 'prev_help', 'reported_help', 'mismatches',
                'claim_ppm', 'calls_ppm', 'clock_ms', 'flagged', 'excess', 'throttled'}
local PPM = 1000000
local op, task, ttl, subject = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

if op == 'complete' then
  local prior = redis.call('GET', KEYS[3])
  if prior then return {1, prior} end
  redis.call('SET', KEYS[3], ARGV[10], 'EX', ttl)
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('HINCRBY', KEYS[2], 'tokens', ARGV[11]) end
  return {0, ARGV[10]}
end

if op ~= 'get' then
  local prior = redis.call('GET', KEYS[3])
  if prior then return {1, prior} end
end

local pol = redis.call('HMGET', KEYS[1], 'schedule', 'mode', 'burst_ppm', 'window')
if not pol[1] then return redis.error_reply('UNKNOWN_TASK ' .. task) end
local schedule, mode = cjson.decode(pol[1]), pol[2]
local burst, window = tonumber(pol[3]), tonumber(pol[4])

local c = {}
local raw = redis.call('HMGET', KEYS[2], unpack(FIELDS))
for i = 1, #FIELDS do c[i] = tonumber(raw[i]) or 0 end
if not raw[1] then c[6] = burst end  -- a fresh budget starts full

local function tau_at(n)
  local t = schedule[1][2]
  for _, s in ipairs(schedule) do
    if s[1] > n then break end
    t = s[2]
  end
  return t
end

-- collab.budget.refill: both buckets to now (rate * dt above 2^53 is far above the cap: min is exact)
local function refill()
  local now = tonumber(ARGV[5])
  local dt = math.max(0, now - c[15])
  c[13] = math.min(tonumber(ARGV[7]) * PPM, c[13] + tonumber(ARGV[6]) * dt)
  c[14] = math.min(tonumber(ARGV[9]) * PPM, c[14] + tonumber(ARGV[8]) * dt)
  c[15] = math.max(c[15], now)
end

local allowed, report = true, cjson.null
if op == 'report' then
  refill()
  local claimed, h, off = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
  local r = math.min(claimed, math.floor(c[13] / PPM))  -- collab.budget.claim
  c[13] = c[13] - r * PPM
  if claimed > r then c[16], c[17] = c[16] + 1, c[17] + claimed - r end
  local seen = tonumber(redis.call('HGET', KEYS[4], 'help')) or 0
  local counted = math.max(seen, math.min(h, seen + off))
  local tau_before = tau_at(c[1])
  c[1], c[2] = c[1] + r, c[2] + counted
  c[6] = math.min(burst, c[6] + tau_before * r)
  c[7], c[8] = c[7] + r, c[8] + counted
  if c[7] >= window then c[9], c[10], c[7], c[8] = c[7], c[8], 0, 0 end
  c[11] = c[11] + h
  if counted ~= h then c[12] = c[12] + 1 end
  redis.call('HSET', KEYS[4], 'help', seen, 'closed', 1)
  redis.call('EXPIRE', KEYS[4], ttl)
  report = {r, counted, h, tau_before}
elseif op == 'assist' then
  refill()
  local k = tonumber(ARGV[10])
  local charge = math.max(1, k) * PPM
  if c[6] < PPM and mode ~= 'meter' then
    allowed, c[4] = false, c[4] + 1
  elseif c[14] < PPM then  -- collab.budget.bounded_assist: the calls bucket is empty
    allowed, c[18] = false, c[18] + 1
  elseif c[6] >= PPM then
    c[3], c[6], c[14] = c[3] + 1, c[6] - charge, c[14] - PPM
    if mode == 'meter' and c[6] < 0 then c[6] = 0 end
  else
    c[3], c[6], c[14] = c[3] + 1, 0, c[14] - PPM
  end
  if ARGV[11] == '1' and redis.call('HGET', KEYS[4], 'closed') ~= '1' then
    redis.call('HINCRBY', KEYS[4], 'help', k)
    redis.call('HSETNX', KEYS[4], 'closed', 0)
    redis.call('EXPIRE', KEYS[4], ttl)
  else
    c[2], c[8] = c[2] + k, c[8] + k
  end
end

local answer = cjson.encode({op = op, task = task, subject = subject, allowed = allowed, c = c, tau = tau_at(c[1]),
                             mode = mode, burst = burst, report = report})
if op ~= 'get' then
  local args = {}
  for i = 1, #FIELDS do
    args[#args + 1] = FIELDS[i]
    args[#args + 1] = string.format('%d', c[i])
  end
  redis.call('HSET', KEYS[2], unpack(args))
  redis.call('SET', KEYS[3], answer, 'EX', ttl)
end
return {0, answer}
