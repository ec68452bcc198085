"""The Lua scripts hubs run in Redis: each one step no other hub can interleave with.

Keys and channels are named in hub/cluster/wire.py. Loaded once per connection
(``SCRIPT LOAD``) and run by SHA; a Redis that restarted gets them again when
the link reconnects (hub/cluster/link.py).
"""

from __future__ import annotations

from typing import Final

from hub.cluster.wire import CONTROL_CHANNEL, kick_message_lua

# KEYS: epoch, own, watchers. ARGV: hub, lease_ms, now_ms, device.
# A new claim always wins (as a new socket does on one hub): the next epoch, the
# owner key with a fresh lease, a kick to every hub, and who watches the device.
CLAIM: Final = f"""
local hub = ARGV[1]
local device = ARGV[4]
local e = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], hub .. ' ' .. e, 'PX', ARGV[2])
redis.call('PUBLISH', '{CONTROL_CHANNEL}', {kick_message_lua()})
local watchers = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[3], '+inf')
return {{e, watchers}}
"""

# KEYS: own1, epoch1, own2, epoch2, ... ARGV: hub, lease_ms, epoch1, epoch2, ...
# Per device 1 (still ours: lease extended, or taken back when it had run out and
# nobody claimed the device since) or 0 (another hub claimed it: we lost it).
RENEW: Final = """
local out = {}
for i = 1, #KEYS, 2 do
  local e = ARGV[2 + (i + 1) / 2]
  local mine = ARGV[1] .. ' ' .. e
  local current = redis.call('GET', KEYS[i])
  if current == mine then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[#out + 1] = 1
  elseif (not current) and redis.call('GET', KEYS[i + 1]) == e then
    redis.call('SET', KEYS[i], mine, 'PX', ARGV[2])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

# KEYS: snap. ARGV: version, message, channel, ttl_ms.
# Store and publish a status change unless a newer one is stored already: an
# owner that lost the device cannot mark it offline over its new owner.
STATUS: Final = """
local current = tonumber(redis.call('HGET', KEYS[1], 'v') or '-1')
if tonumber(ARGV[1]) < current then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'm', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return 1
"""

# KEYS: own. ARGV: "{hub} {epoch}". The device left: free its owner key if still ours.
RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
