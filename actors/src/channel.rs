//! Channel names and the namespaces that give channels their options.
//!
//! A channel name is `[$]<namespace>:<rest>` or, with no `:`, a channel of the top-level options.
//! `$` marks a private channel: only a subscription token (or a grant from the server: the
//! connection token's `channels`, the server API) lets a client in. A `#` makes a channel
//! user-limited: `orders:sim#alice` is only for alice, `chat:dm#alice,bob` for both. The server's
//! own `notifications` channel may always be subscribed to and is never published to by clients.
//!
//! In the development-only insecure mode every client may do everything on every channel but
//! publish on `notifications`.

use std::collections::HashMap;
use std::time::Duration;

use rpc_crypto_proto::ErrorReply;
use serde::{Deserialize, Serialize};

use crate::history::Bounds;
use crate::settings::duration;

/// The channel the server publishes its notifications on.
pub const NOTIFICATIONS: &str = "notifications";

/// The longest user name, in bytes: it has to fit in user-limited channel names
/// (`client.channel_max_length`, 255 by default) beside a namespace, an exchange and other users.
pub const MAX_USER_NAME_LEN: usize = 128;

/// What is wrong with `name` as a user's name, if anything. A user name may not contain `#` or
/// `,`, which separate the users of a user-limited channel (a user `carol#alice` would otherwise
/// be given `orders:sim#carol#alice`, which alice may read), nor control characters, and is at
/// most [`MAX_USER_NAME_LEN`] bytes. Every place a name enters is checked: a connection token's
/// `sub`, a client certificate's name, a backend-created session's owner, a secure client id.
pub fn user_name_problem(name: &str) -> Option<&'static str> {
    if name.len() > MAX_USER_NAME_LEN {
        Some("is longer than 128 bytes")
    } else if name.contains(['#', ',']) {
        Some("contains `#` or `,`")
    } else if name.chars().any(char::is_control) {
        Some("contains control characters")
    } else {
        None
    }
}

/// What clients may do on the channels of one namespace, and what the channels keep. The names
/// are Centrifugo's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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

    /// Publications kept per channel for `history` and recovery; 0 = no history. History needs
    /// both this and `history_ttl`.
    pub history_size: usize,
    /// How long each publication is kept in history.
    #[serde(with = "duration")]
    pub history_ttl: Duration,
    /// How long a channel's stream position (epoch and offset) is kept after its last
    /// publication, once it has no subscribers; after that the channel starts a new epoch.
    #[serde(with = "duration")]
    pub history_meta_ttl: Duration,
    /// Every subscription is recoverable, as if each client asked with `recoverable`.
    pub force_recovery: bool,
    /// Every subscription is positioned, as if each client asked with `positioned`.
    pub force_positioning: bool,
    /// Subscribers of a channel may read its history.
    pub allow_history_for_subscriber: bool,
    /// Clients with a user may read the history of any channel of the namespace.
    pub allow_history_for_client: bool,
    /// With one of the two above: anonymous clients may as well.
    pub allow_history_for_anonymous: bool,

    /// The channels keep presence: who is subscribed.
    pub presence: bool,
    /// Subscribers who ask (`join_leave` in subscribe) get join and leave pushes.
    pub join_leave: bool,
    /// With `join_leave`: every subscriber gets them, asked or not.
    pub force_push_join_leave: bool,
    /// Subscribers of a channel may ask for its presence.
    pub allow_presence_for_subscriber: bool,
    /// Clients with a user may ask for the presence of any channel of the namespace.
    pub allow_presence_for_client: bool,
    /// With one of the two above: anonymous clients may as well.
    pub allow_presence_for_anonymous: bool,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            allow_subscribe_for_client: false,
            allow_subscribe_for_anonymous: false,
            allow_publish_for_client: false,
            allow_publish_for_subscriber: false,
            allow_publish_for_anonymous: false,
            history_size: 0,
            history_ttl: Duration::ZERO,
            history_meta_ttl: Duration::from_secs(3600),
            force_recovery: false,
            force_positioning: false,
            allow_history_for_subscriber: false,
            allow_history_for_client: false,
            allow_history_for_anonymous: false,
            presence: false,
            join_leave: false,
            force_push_join_leave: false,
            allow_presence_for_subscriber: false,
            allow_presence_for_client: false,
            allow_presence_for_anonymous: false,
        }
    }
}

impl ChannelOptions {
    /// The bounds of the channels' history, if they keep one.
    pub fn history(&self) -> Option<Bounds> {
        (self.history_size > 0 && !self.history_ttl.is_zero()).then_some(Bounds {
            size: self.history_size,
            ttl: self.history_ttl,
        })
    }

    /// A problem with the options, for config validation.
    pub fn check(&self) -> Result<(), String> {
        if (self.history_size == 0) != self.history_ttl.is_zero() {
            return Err("history_size and history_ttl must be set together".into());
        }
        if self.history().is_none() && (self.force_recovery || self.force_positioning) {
            return Err("force_recovery and force_positioning need history".into());
        }
        if self.force_push_join_leave && !self.join_leave {
            return Err("force_push_join_leave needs join_leave".into());
        }
        if self.join_leave && !self.presence {
            return Err("join_leave needs presence".into());
        }
        Ok(())
    }
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
    insecure: bool,
}

/// A channel name that passed the rules, with what they say of it.
#[derive(Debug, Clone, Copy)]
pub struct ChannelPolicy<'a, 'c> {
    pub options: &'a ChannelOptions,
    /// `$`-prefixed: needs a subscription token.
    pub private: bool,
    /// The server's `notifications` channel.
    pub notifications: bool,
    /// User-limited: the users after the `#`, comma-separated.
    pub users: Option<&'c str>,
    /// The insecure (development) mode is on.
    pub insecure: bool,
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
            insecure: false,
        }
    }

    /// Turns the development-only insecure mode on: every permission is granted.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// The options of `channel`, or the error a command naming it gets: 107 for a malformed
    /// name, 102 for a namespace that is not configured.
    pub fn policy<'c>(&self, channel: &'c str) -> Result<ChannelPolicy<'_, 'c>, ErrorReply> {
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
        let users = channel.rsplit_once('#').map(|(_, users)| users);
        Ok(ChannelPolicy {
            options,
            private,
            notifications,
            users,
            insecure: self.insecure,
        })
    }
}

impl ChannelPolicy<'_, '_> {
    /// Whether `user` is one of a user-limited channel's users (always, for other channels).
    pub fn admits(&self, user: &str) -> bool {
        match self.users {
            None => true,
            Some(users) => !user.is_empty() && users.split(',').any(|u| u == user),
        }
    }

    /// Whether a client (anonymous when `user` is empty) may subscribe. `granted`: a valid
    /// subscription token for this channel, or the server's own grant, lets it in wherever the
    /// namespace exists.
    pub fn may_subscribe(&self, user: &str, granted: bool) -> bool {
        if self.notifications || self.insecure || granted {
            return true;
        }
        !self.private
            && self.admits(user)
            && self.options.allow_subscribe_for_client
            && (!user.is_empty() || self.options.allow_subscribe_for_anonymous)
    }

    /// Whether a client may read the channel's history, given whether it is subscribed.
    pub fn may_read_history(&self, user: &str, subscribed: bool) -> bool {
        if self.insecure {
            return true;
        }
        let o = self.options;
        // A private channel's history is for those its tokens let in.
        let as_client = o.allow_history_for_client && !self.private;
        (as_client || (o.allow_history_for_subscriber && subscribed))
            && self.admits(user)
            && (!user.is_empty() || o.allow_history_for_anonymous)
    }

    /// Whether a client may ask who is in the channel, given whether it is subscribed.
    pub fn may_read_presence(&self, user: &str, subscribed: bool) -> bool {
        if self.insecure {
            return true;
        }
        let o = self.options;
        let as_client = o.allow_presence_for_client && !self.private;
        (as_client || (o.allow_presence_for_subscriber && subscribed))
            && self.admits(user)
            && (!user.is_empty() || o.allow_presence_for_anonymous)
    }

    /// Whether a client may publish, given whether it is subscribed to the channel.
    pub fn may_publish(&self, user: &str, subscribed: bool) -> bool {
        if self.notifications {
            return false;
        }
        if self.insecure {
            return true;
        }
        if self.private {
            return false;
        }
        let o = self.options;
        (o.allow_publish_for_client || (o.allow_publish_for_subscriber && subscribed))
            && self.admits(user)
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

    #[test]
    fn user_names_may_not_cross_the_user_boundary() {
        for name in ["carol#alice", "alice,carol", "tab\tname", "nul\0"] {
            assert!(user_name_problem(name).is_some(), "{name:?}");
        }
        assert!(user_name_problem(&"x".repeat(129)).is_some());
        for name in ["", "alice", "Ålice Bob", "x@example.com", &"x".repeat(128)] {
            assert_eq!(user_name_problem(name), None, "{name:?}");
        }
        // A secure client id is its session's user: the same rule, on top of its own.
        assert!(!crate::settings::valid_client_id("carol#alice"));
        assert!(!crate::settings::valid_client_id("a,b"));
        assert!(crate::settings::valid_client_id("client-1"));
    }

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
        assert!(ticker.may_subscribe("", false));
        assert!(!ticker.may_publish("", true));
        let chat = r.policy("chat:x").unwrap();
        assert!(chat.may_publish("", true));
        assert!(!chat.may_publish("", false));
        let top = r.policy("plain").unwrap();
        assert!(!top.may_subscribe("alice", false));
        let private = r.policy("$chat:x").unwrap();
        assert!(!private.may_subscribe("alice", false));
        assert!(private.may_subscribe("alice", true));
        assert!(!private.may_publish("alice", true));
        let notifications = r.policy(NOTIFICATIONS).unwrap();
        assert!(notifications.may_subscribe("", false));
        assert!(!notifications.may_publish("alice", true));
        assert!(is_listable("chat:x") && !is_listable("$chat:x") && !is_listable("orders:sim#bob"));
    }

    #[test]
    fn user_limited_channels_admit_only_their_users() {
        let r = rules();
        let dm = r.policy("chat:dm#alice,bob").unwrap();
        assert!(dm.may_subscribe("alice", false) && dm.may_subscribe("bob", false));
        assert!(!dm.may_subscribe("carol", false));
        assert!(!dm.may_subscribe("", false));
        assert!(!dm.may_subscribe("ali", false));
        assert!(dm.may_publish("bob", true) && !dm.may_publish("carol", true));
    }

    #[test]
    fn insecure_mode_grants_everything_but_publishing_notifications() {
        let r = rules().insecure(true);
        let private = r.policy("$chat:x#bob").unwrap();
        assert!(private.may_subscribe("", false) && private.may_publish("", false));
        assert!(private.may_read_history("", false) && private.may_read_presence("", false));
        assert!(!r.policy(NOTIFICATIONS).unwrap().may_publish("", true));
    }
}
