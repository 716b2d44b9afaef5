//! ccxt's Balance: the user's funds per currency.
//!
//! ccxt writes a balance twice over, per currency and per column:
//! `{"info":..,"timestamp":..,"datetime":..,"free":{"BTC":1},"used":{"BTC":0},"total":{"BTC":1},
//! "BTC":{"free":1,"used":0,"total":1}}`. Only the per-currency accounts are stored here; the
//! columns are written from them, so the two views cannot disagree. Because currency codes sit
//! beside the structure's own keys, a currency may not be called `info`, `timestamp`,
//! `datetime`, `free`, `used` or `total` ([`Balance::insert`] refuses them).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Info, Iso8601, Timestamp};

/// The keys of the structure itself, which no currency may take.
const RESERVED: [&str; 6] = ["info", "timestamp", "datetime", "free", "used", "total"];

/// A currency code a [`Balance`] cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BalanceError {
    /// Empty code.
    #[error("empty currency code")]
    Empty,
    /// The code is one of the balance's own keys.
    #[error("currency code {0:?} collides with a balance key")]
    Reserved(&'static str),
}

/// One currency's funds: ccxt's `{free, used, total}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Available for new orders or withdrawal.
    #[serde(default)]
    pub free: Option<f64>,
    /// Locked in open orders (or otherwise held).
    #[serde(default)]
    pub used: Option<f64>,
    /// `free + used`.
    #[serde(default)]
    pub total: Option<f64>,
}

impl Account {
    /// An account from what the exchange reported, completing the third value from the other
    /// two as ccxt's `safeBalance` does (`total = free + used`, `free = total - used`,
    /// `used = total - free`).
    pub fn new(free: Option<f64>, used: Option<f64>, total: Option<f64>) -> Self {
        let total = total.or_else(|| Some(free? + used?));
        let free = free.or_else(|| Some(total? - used?));
        let used = used.or_else(|| Some(total? - free?));
        Self { free, used, total }
    }
}

/// ccxt's Balance structure (see the module doc for its JSON shape).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Balance {
    /// `timestamp` and `datetime` of the snapshot.
    pub timestamp: Timestamp,
    /// The exchange's message.
    pub info: Info,
    /// Accounts by unified currency code; sorted, so the JSON is stable.
    accounts: BTreeMap<String, Account>,
}

impl Balance {
    /// An empty balance at `timestamp`.
    pub fn new(timestamp: impl Into<Timestamp>) -> Self {
        Self {
            timestamp: timestamp.into(),
            info: Info::NONE,
            accounts: BTreeMap::new(),
        }
    }

    /// Sets the account of `code`, returning the previous one.
    pub fn insert(
        &mut self,
        code: impl Into<String>,
        account: Account,
    ) -> Result<Option<Account>, BalanceError> {
        let code = code.into();
        check_code(&code)?;
        Ok(self.accounts.insert(code, account))
    }

    /// Removes the account of `code`.
    pub fn remove(&mut self, code: &str) -> Option<Account> {
        self.accounts.remove(code)
    }

    /// The account of `code`.
    pub fn get(&self, code: &str) -> Option<&Account> {
        self.accounts.get(code)
    }

    /// Every (code, account), codes in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Account)> {
        self.accounts
            .iter()
            .map(|(code, account)| (code.as_str(), account))
    }

    /// Number of currencies.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// No currency at all.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

fn check_code(code: &str) -> Result<(), BalanceError> {
    if code.is_empty() {
        return Err(BalanceError::Empty);
    }
    match RESERVED.iter().find(|reserved| **reserved == code) {
        Some(reserved) => Err(BalanceError::Reserved(reserved)),
        None => Ok(()),
    }
}

/// Reads one value of an account.
type Pick = fn(&Account) -> Option<f64>;

/// One column (`free`, `used` or `total`) as `{CODE: n, ...}`.
struct Column<'a> {
    accounts: &'a BTreeMap<String, Account>,
    pick: Pick,
}

impl Serialize for Column<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.accounts
                .iter()
                .map(|(code, account)| (code, (self.pick)(account))),
        )
    }
}

impl Serialize for Balance {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(6 + self.accounts.len()))?;
        map.serialize_entry("info", &self.info)?;
        map.serialize_entry(Timestamp::MS_KEY, &self.timestamp.0)?;
        map.serialize_entry(Timestamp::ISO_KEY, &self.timestamp.0.map(Iso8601))?;
        let columns: [(&str, Pick); 3] = [
            ("free", |a| a.free),
            ("used", |a| a.used),
            ("total", |a| a.total),
        ];
        for (key, pick) in columns {
            let column = Column {
                accounts: &self.accounts,
                pick,
            };
            map.serialize_entry(key, &column)?;
        }
        for (code, account) in &self.accounts {
            map.serialize_entry(code, account)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Balance {
    /// Reads the per-currency accounts; the columns and `datetime` are derived, so skipped.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(BalanceVisitor)
    }
}

struct BalanceVisitor;

impl<'de> Visitor<'de> for BalanceVisitor {
    type Value = Balance;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a ccxt balance object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Balance, A::Error> {
        let mut balance = Balance::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "info" => balance.info = map.next_value()?,
                "timestamp" => balance.timestamp = Timestamp(map.next_value()?),
                "datetime" | "free" | "used" | "total" => {
                    map.next_value::<de::IgnoredAny>()?;
                }
                _ => {
                    let account = map.next_value()?;
                    balance.insert(key, account).map_err(de::Error::custom)?;
                }
            }
        }
        Ok(balance)
    }
}
