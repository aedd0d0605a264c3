//! Entries that expire: how a value carries its deadline in the bucket
//! hash, the server's clock as the handle estimates it, and the script
//! that removes expired entries from the server (see `## Expiry` in the
//! crate docs for the design and its costs).

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first byte of a stored value that carries a header. Chosen because
/// no serializer of shelf starts a value with it (MessagePack never uses
/// 0xC1; pickle starts with 0x80), so escaping a plain value costs nothing
/// in practice; a plain value that does start with it is escaped.
pub(crate) const TAG: u8 = 0xC1;

/// Header kind: a plain value that happened to start with [`TAG`].
const ESCAPED: u8 = 0;

/// Header kind: a value with a deadline (8 bytes, big-endian milliseconds
/// since the Unix epoch on the server's clock) before it.
const UNTIL: u8 = 1;

/// The bytes before the value in an expiring entry.
pub(crate) const UNTIL_HEADER: usize = 10;

/// A stored value, decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stored<'a> {
    /// A value without a deadline.
    Plain(&'a [u8]),
    /// A value that expires at this server time (ms since the epoch).
    Until(&'a [u8], u64),
}

/// What is stored for a plain `value`: itself, unless it starts with
/// [`TAG`] (then `TAG 0 value`).
pub(crate) fn encode_plain(value: &[u8]) -> Cow<'_, [u8]> {
    if value.first() == Some(&TAG) {
        let mut out = Vec::with_capacity(value.len() + 2);
        out.extend_from_slice(&[TAG, ESCAPED]);
        out.extend_from_slice(value);
        Cow::Owned(out)
    } else {
        Cow::Borrowed(value)
    }
}

/// What is stored for `value` expiring at server time `until_ms`.
pub(crate) fn encode_until(value: &[u8], until_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + UNTIL_HEADER);
    out.extend_from_slice(&[TAG, UNTIL]);
    out.extend_from_slice(&until_ms.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Decodes a stored value; an unknown header is damage (a raw client
/// wrote it), reported, never guessed at.
pub(crate) fn decode(stored: &[u8]) -> Result<Stored<'_>, String> {
    match stored {
        [TAG, ESCAPED, rest @ ..] => Ok(Stored::Plain(rest)),
        [TAG, UNTIL, rest @ ..] if rest.len() >= 8 => {
            let (when, value) = rest.split_at(8);
            let mut be = [0u8; 8];
            be.copy_from_slice(when);
            Ok(Stored::Until(value, u64::from_be_bytes(be)))
        }
        [TAG, UNTIL, ..] => Err("a stored value is cut short inside its deadline".to_owned()),
        [TAG, kind, ..] => Err(format!(
            "a stored value has an unknown header (0x{TAG:02x} 0x{kind:02x}): not written by shelf"
        )),
        [TAG] => Err("a stored value is cut short after its header byte".to_owned()),
        plain => Ok(Stored::Plain(plain)),
    }
}

/// `stored` as the value a reader sees at server time `now_ms`: `None`
/// when it has expired. Takes the vector so a plain value is not copied.
pub(crate) fn visible(mut stored: Vec<u8>, now_ms: impl FnOnce() -> u64) -> Result<Option<Vec<u8>>, String> {
    if stored.first() != Some(&TAG) {
        return Ok(Some(stored));
    }
    let cut = match decode(&stored)? {
        Stored::Plain(_) => 2,
        Stored::Until(_, until) if until <= now_ms() => return Ok(None),
        Stored::Until(..) => UNTIL_HEADER,
    };
    stored.drain(..cut);
    Ok(Some(stored))
}

/// Milliseconds since the epoch on this machine's clock.
pub(crate) fn local_ms() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The server's time from its `TIME` reply, in ms since the epoch.
pub(crate) fn server_ms(seconds: &str, micros: &str) -> Option<i64> {
    let s: i64 = seconds.parse().ok()?;
    let us: i64 = micros.parse().ok()?;
    s.checked_mul(1000)?.checked_add(us / 1000)
}

/// Removes the bucket's entries whose deadline has passed (on the server's
/// clock) and answers the bucket's `HLEN` after: `KEYS[1]` the bucket,
/// `KEYS[2]` its deadline index (a sorted set, member the key, score the
/// deadline). A member whose entry was overwritten since (with a plain
/// value or a later deadline) is dropped without touching the entry: the
/// value's own header decides. On a bucket without an index this is one
/// `ZRANGEBYSCORE` of a missing key and the `HLEN`.
pub(crate) const PURGE_AND_COUNT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, k in ipairs(due) do
  local v = redis.call('HGET', KEYS[1], k)
  if v and #v >= 10 and string.byte(v, 1) == 193 and string.byte(v, 2) == 1 then
    local e = 0
    for i = 3, 10 do e = e * 256 + string.byte(v, i) end
    if e <= now then redis.call('HDEL', KEYS[1], k) end
  end
end
if #due > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
return redis.call('HLEN', KEYS[1])
";

/// The first bytes of field `ARGV[1]` of hash `KEYS[1]` (enough for the
/// header), or nil: `contains` without carrying the value over the network.
pub(crate) const HEAD: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
return string.sub(v, 1, 10)
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_damage_is_reported() {
        for v in [&b""[..], b"plain", &[TAG], &[TAG, 0], &[TAG, 1, 2, 3]] {
            let stored = encode_plain(v);
            assert_eq!(decode(&stored), Ok(Stored::Plain(v)));
            assert_eq!(visible(stored.into_owned(), || 0), Ok(Some(v.to_vec())));
            let stored = encode_until(v, 1000);
            assert_eq!(decode(&stored), Ok(Stored::Until(v, 1000)));
            assert_eq!(visible(stored.clone(), || 999), Ok(Some(v.to_vec())));
            assert_eq!(visible(stored, || 1000), Ok(None));
        }
        assert!(decode(&[TAG, 7, 0]).is_err());
        assert!(decode(&[TAG]).is_err());
        assert!(decode(&[TAG, UNTIL, 1, 2]).is_err());
        assert_eq!(server_ms("1700000000", "123456"), Some(1_700_000_000_123));
        assert_eq!(server_ms("x", "1"), None);
    }
}
