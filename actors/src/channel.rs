//! Channel names and the namespaces that give channels their options.
//!
//! A channel name is `[$]<namespace>:<rest>` or, with no `:`, a channel of the top-level options.
//! `$` marks a private channel (it needs a subscription token; until tokens exist, none is
//! granted). The server's own `notifications` channel may always be subscribed to and is never
//! published to by clients.

use std::collections::HashMap;

use rpc_crypto_proto::ErrorReply;
use serde::{Deserialize, Serialize};

/// The channel the server publishes its notifications on.
pub const NOTIFICATIONS: &str = "notifications";

/// What clients may do on the channels of one namespace. The names are Centrifugo's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelOptions {
    /// Clients with a user may subscribe.
    pub allow_subscribe_for_client: bool,
    /// With `allow_subscribe_for_client`: anonymous clients (no user) may subscribe as well.
    pub allow_subscribe_for_anonymous: bool,
    /// Clients with a user may publish.
    pub allow_publish_for_client: bool,
    /// Clients subscribed to the channel may publish.
    pub allow_publish_for_subscriber: bool,
    /// With one of the two above: anonymous clients may publish as well.
    pub allow_publish_for_anonymous: bool,
}

/// A namespace: a name and the options of its channels.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    pub name: String,
    #[serde(flatten)]
    pub options: ChannelOptions,
}

/// Every channel's options, looked up by namespace.
#[derive(Debug, Clone, Default)]
pub struct ChannelRules {
    top_level: ChannelOptions,
    namespaces: HashMap<String, ChannelOptions>,
    max_length: usize,
}

/// A channel name that passed the rules, with what they say of it.
#[derive(Debug, Clone, Copy)]
pub struct ChannelPolicy<'a> {
    pub options: &'a ChannelOptions,
    /// `$`-prefixed: needs a subscription token.
    pub private: bool,
    /// The server's `notifications` channel.
    pub notifications: bool,
}

impl ChannelRules {
    pub fn new(top_level: ChannelOptions, namespaces: &[Namespace], max_length: usize) -> Self {
        ChannelRules {
            top_level,
            namespaces: namespaces
                .iter()
                .map(|ns| (ns.name.clone(), ns.options.clone()))
                .collect(),
            max_length,
        }
    }

    /// The options of `channel`, or the error a command naming it gets: 107 for a malformed
    /// name, 102 for a namespace that is not configured.
    pub fn policy(&self, channel: &str) -> Result<ChannelPolicy<'_>, ErrorReply> {
        if channel.is_empty() {
            return Err(ErrorReply::BAD_REQUEST.with_message("channel required"));
        }
        if channel.len() > self.max_length {
            return Err(ErrorReply::BAD_REQUEST.with_message(format!(
                "channel name longer than {} bytes",
                self.max_length
            )));
        }
        if channel.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ErrorReply::BAD_REQUEST
                .with_message("channel name with white space or control characters"));
        }
        let private = channel.starts_with('$');
        let name = channel.strip_prefix('$').unwrap_or(channel);
        let notifications = channel == NOTIFICATIONS;
        let options = match name.split_once(':') {
            Some((namespace, _)) => self
                .namespaces
                .get(namespace)
                .ok_or(ErrorReply::UNKNOWN_CHANNEL)?,
            None => &self.top_level,
        };
        Ok(ChannelPolicy {
            options,
            private,
            notifications,
        })
    }
}

impl ChannelPolicy<'_> {
    /// Whether a client (anonymous when `user` is empty) may subscribe.
    pub fn may_subscribe(&self, user: &str) -> bool {
        if self.notifications {
            return true;
        }
        !self.private
            && self.options.allow_subscribe_for_client
            && (!user.is_empty() || self.options.allow_subscribe_for_anonymous)
    }

    /// Whether a client may publish, given whether it is subscribed to the channel.
    pub fn may_publish(&self, user: &str, subscribed: bool) -> bool {
        if self.notifications || self.private {
            return false;
        }
        let o = self.options;
        (o.allow_publish_for_client || (o.allow_publish_for_subscriber && subscribed))
            && (!user.is_empty() || o.allow_publish_for_anonymous)
    }
}

/// Whether a channel name may be listed to other clients: neither private nor user-limited.
pub fn is_listable(channel: &str) -> bool {
    !channel.starts_with('$') && !channel.contains('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ChannelRules {
        let open = ChannelOptions {
            allow_subscribe_for_client: true,
            allow_subscribe_for_anonymous: true,
            allow_publish_for_subscriber: true,
            allow_publish_for_anonymous: true,
            ..Default::default()
        };
        ChannelRules::new(
            ChannelOptions::default(),
            &[
                Namespace {
                    name: "chat".into(),
                    options: open,
                },
                Namespace {
                    name: "ticker".into(),
                    options: ChannelOptions {
                        allow_subscribe_for_client: true,
                        allow_subscribe_for_anonymous: true,
                        ..Default::default()
                    },
                },
            ],
            20,
        )
    }

    #[test]
    fn names_are_checked() {
        let r = rules();
        assert_eq!(r.policy("").unwrap_err().code, 107);
        assert_eq!(r.policy("chat:0123456789abcdefgh").unwrap_err().code, 107);
        assert_eq!(r.policy("chat:a b").unwrap_err().code, 107);
        assert_eq!(r.policy("chat:a\u{7}").unwrap_err().code, 107);
        assert_eq!(r.policy("nope:x").unwrap_err().code, 102);
        assert!(r.policy("chat:ok/é").is_ok());
    }

    #[test]
    fn permissions_follow_options() {
        let r = rules();
        let ticker = r.policy("ticker:sim:BTC/USDT").unwrap();
        assert!(ticker.may_subscribe(""));
        assert!(!ticker.may_publish("", true));
        let chat = r.policy("chat:x").unwrap();
        assert!(chat.may_publish("", true));
        assert!(!chat.may_publish("", false));
        let top = r.policy("plain").unwrap();
        assert!(!top.may_subscribe("alice"));
        let private = r.policy("$chat:x").unwrap();
        assert!(!private.may_subscribe("alice"));
        assert!(!private.may_publish("alice", true));
        let notifications = r.policy(NOTIFICATIONS).unwrap();
        assert!(notifications.may_subscribe(""));
        assert!(!notifications.may_publish("alice", true));
        assert!(is_listable("chat:x") && !is_listable("$chat:x") && !is_listable("orders:sim#bob"));
    }
}
