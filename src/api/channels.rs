//! `channels {pattern?}`: every channel with a subscriber, private and user-limited ones
//! included, with its subscriber count: `{"channels":{"<name>":{"num_clients":n}}}`.
//!
//! `pattern` filters the names with a simple glob: `*` matches any run of characters (none
//! included) and every other character itself; there is no escape, so a literal `*` in a name
//! is matched by `*`. Without it, every channel is listed.

use std::collections::BTreeMap;

use rpc_crypto_actors::router::ListAllChannels;
use serde::{Deserialize, Serialize};

use super::{ask, ApiError, ApiMethod, ApiState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsRequest {
    #[serde(default)]
    pub pattern: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ChannelsResult {
    pub channels: BTreeMap<String, ChannelInfo>,
}

#[derive(Debug, Serialize)]
pub struct ChannelInfo {
    pub num_clients: usize,
}

impl ApiMethod for ChannelsRequest {
    type Output = ChannelsResult;

    async fn apply(self, state: &ApiState) -> Result<ChannelsResult, ApiError> {
        let all = ask(&state.router, ListAllChannels).await?;
        let channels = all
            .into_iter()
            .filter(|(name, _)| {
                self.pattern
                    .as_deref()
                    .map_or(true, |pattern| glob_match(pattern, name))
            })
            .map(|(name, num_clients)| (name, ChannelInfo { num_clients }))
            .collect();
        Ok(ChannelsResult { channels })
    }
}

/// Whether `name` matches `pattern`, where `*` is any run of characters. Greedy with one
/// backtrack point (the last `*`), so linear in practice and never exponential.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), name.chars().collect());
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, n));
            p += 1;
        } else if p < pattern.len() && pattern[p] == name[n] {
            p += 1;
            n += 1;
        } else if let Some((star_p, star_n)) = star {
            // Let the last `*` take one more character and try again after it.
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob() {
        assert!(glob_match("chat:*", "chat:x"));
        assert!(glob_match("chat:*", "chat:"));
        assert!(!glob_match("chat:*", "ticker:x"));
        assert!(glob_match("*:btc*", "ticker:btc-usd"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }
}
