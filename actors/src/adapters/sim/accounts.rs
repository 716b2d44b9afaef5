//! Paper accounts of the `sim` exchange: each currency's balance split into `free` and `used`
//! (reserved by open orders), plus the account's bounded history of closed orders and trades.
//!
//! Balances are `u128` counts of the currency's smallest unit (see [`super::engine`] for how the
//! unit is chosen), never floats, so that sums are exact and the property tests can check that
//! funds are conserved to the last unit.
//!
//! Funds only ever move through four primitives: [`Account::reserve`] (free → used),
//! [`Account::release`] (used → free), [`Account::spend`] (out of used, to a counterparty) and
//! [`Account::credit`] (into free). `total` is not stored but always `free + used`, so it cannot
//! drift. The engine checks every precondition (enough free funds) before it starts moving
//! funds, which is what makes an operation all-or-nothing; the primitives therefore only
//! saturate instead of failing, and a debug build asserts the invariant they rely on.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::engine::{units_to_f64, units_to_string, FeeSchedule, Fill, OrderId};

/// An account of one [`super::engine::Exchange`]: an index into its accounts, handed out by
/// `open_account`. The actor keeps the mapping from users to accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(pub u32);

/// One currency of one account, in the currency's smallest unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Holding {
    /// Available for new orders.
    pub free: u128,
    /// Reserved by open orders.
    pub used: u128,
}

impl Holding {
    /// `free + used`. Cannot overflow in practice: every balance is bounded by the currency's
    /// supply, which is checked to fit when accounts are opened.
    pub fn total(&self) -> u128 {
        self.free.saturating_add(self.used)
    }
}

/// One currency of a [`Balance`]: exact units and the decimals to read them with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrencyBalance {
    pub free: u128,
    pub used: u128,
    /// Always `free + used`.
    pub total: u128,
    /// The currency's unit is `10^-decimals`.
    pub decimals: u32,
}

impl CurrencyBalance {
    /// `free` as a float, for ccxt JSON.
    pub fn free_f64(&self) -> f64 {
        units_to_f64(self.free, self.decimals)
    }

    /// `used` as a float, for ccxt JSON.
    pub fn used_f64(&self) -> f64 {
        units_to_f64(self.used, self.decimals)
    }

    /// `total` as a float, for ccxt JSON.
    pub fn total_f64(&self) -> f64 {
        units_to_f64(self.total, self.decimals)
    }

    /// `total` as exact decimal text.
    pub fn total_string(&self) -> String {
        units_to_string(self.total, self.decimals)
    }
}

/// A snapshot of an account's balances: every currency the exchange lists, zeros included, so
/// that a ccxt `fetchBalance` shape is complete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Balance {
    pub currencies: BTreeMap<String, CurrencyBalance>,
}

/// A paper account: its funds, open orders and bounded history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    name: String,
    /// Overrides the exchange's fee schedule (e.g. a fee-free market maker).
    pub(crate) fees: Option<FeeSchedule>,
    holdings: BTreeMap<String, Holding>,
    /// Ids of the account's open orders.
    pub(crate) open: BTreeSet<OrderId>,
    /// Ids of the account's closed orders still kept, oldest first.
    pub(crate) closed: VecDeque<OrderId>,
    /// The account's own trades (fills), oldest first.
    pub(crate) trades: VecDeque<Fill>,
}

impl Account {
    /// An account holding `holdings` (which should list every currency of the exchange).
    pub(crate) fn new(name: String, holdings: BTreeMap<String, Holding>) -> Self {
        Account {
            name,
            fees: None,
            holdings,
            open: BTreeSet::new(),
            closed: VecDeque::new(),
            trades: VecDeque::new(),
        }
    }

    /// The name it was opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its fee schedule override, if any.
    pub fn fees(&self) -> Option<FeeSchedule> {
        self.fees
    }

    /// Its holding of `currency` (zero for a currency it never held).
    pub fn holding(&self, currency: &str) -> Holding {
        self.holdings.get(currency).copied().unwrap_or_default()
    }

    /// All its holdings.
    pub fn holdings(&self) -> &BTreeMap<String, Holding> {
        &self.holdings
    }

    /// Ids of its open orders, ascending (oldest first).
    pub fn open_order_ids(&self) -> impl Iterator<Item = OrderId> + '_ {
        self.open.iter().copied()
    }

    /// Free units of `currency`.
    pub(crate) fn free(&self, currency: &str) -> u128 {
        self.holding(currency).free
    }

    /// Moves `units` from free to used; false (and nothing changes) if free is short.
    pub(crate) fn reserve(&mut self, currency: &str, units: u128) -> bool {
        let h = self.holdings.entry(currency.to_string()).or_default();
        if h.free < units {
            return false;
        }
        h.free -= units;
        h.used = h.used.saturating_add(units);
        true
    }

    /// Moves `units` from used back to free (an order's reservation it no longer needs).
    pub(crate) fn release(&mut self, currency: &str, units: u128) {
        let h = self.holdings.entry(currency.to_string()).or_default();
        debug_assert!(h.used >= units, "release beyond the reservation");
        let units = units.min(h.used);
        h.used -= units;
        h.free = h.free.saturating_add(units);
    }

    /// Takes `units` out of used: reserved funds that go to a counterparty.
    pub(crate) fn spend(&mut self, currency: &str, units: u128) {
        let h = self.holdings.entry(currency.to_string()).or_default();
        debug_assert!(h.used >= units, "spend beyond the reservation");
        h.used = h.used.saturating_sub(units);
    }

    /// Adds `units` to free.
    pub(crate) fn credit(&mut self, currency: &str, units: u128) {
        let h = self.holdings.entry(currency.to_string()).or_default();
        h.free = h.free.saturating_add(units);
    }

    /// Records one of its trades, dropping the oldest beyond `bound`.
    pub(crate) fn record_trade(&mut self, fill: Fill, bound: usize) {
        self.trades.push_back(fill);
        while self.trades.len() > bound {
            self.trades.pop_front();
        }
    }

    /// Moves an order from open to closed; returns the ids of closed orders dropped to keep at
    /// most `bound`, which the caller forgets.
    pub(crate) fn archive(&mut self, id: OrderId, bound: usize) -> Vec<OrderId> {
        self.open.remove(&id);
        self.closed.push_back(id);
        let mut dropped = Vec::new();
        while self.closed.len() > bound {
            if let Some(old) = self.closed.pop_front() {
                dropped.push(old);
            }
        }
        dropped
    }

    /// A snapshot of its balances, `decimals` giving each currency's unit.
    pub(crate) fn balance(&self, decimals: &BTreeMap<String, u32>) -> Balance {
        let currencies = decimals
            .iter()
            .map(|(code, &decimals)| {
                let h = self.holding(code);
                let b = CurrencyBalance {
                    free: h.free,
                    used: h.used,
                    total: h.total(),
                    decimals,
                };
                (code.clone(), b)
            })
            .collect();
        Balance { currencies }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_account_primitives_keep_total() {
        let mut a = Account::new(
            "a".into(),
            BTreeMap::from([("USDT".to_string(), Holding { free: 100, used: 0 })]),
        );
        assert!(!a.reserve("USDT", 101), "cannot reserve more than free");
        assert_eq!(a.holding("USDT"), Holding { free: 100, used: 0 });
        assert!(a.reserve("USDT", 60));
        a.release("USDT", 10);
        assert_eq!(a.holding("USDT"), Holding { free: 50, used: 50 });
        a.spend("USDT", 50);
        a.credit("BTC", 7);
        assert_eq!(a.holding("USDT").total(), 50);
        assert_eq!(a.holding("BTC").total(), 7);
    }

    #[test]
    fn sim_account_archive_is_bounded() {
        let mut a = Account::new("a".into(), BTreeMap::new());
        a.open.extend([1, 2, 3]);
        assert!(a.archive(1, 2).is_empty());
        assert!(a.archive(2, 2).is_empty());
        assert_eq!(a.archive(3, 2), vec![1]);
        assert!(a.open.is_empty());
        assert_eq!(a.closed, VecDeque::from([2, 3]));
    }
}
