//! Exchange adapters: the exchanges the broker trades on. [`sim`] is the built-in paper-trading
//! exchange; [`contract`] is what every adapter answers.

pub mod binance;
pub mod capture;
pub mod coinbase;
pub mod contract;
pub mod decimal;
pub mod http;
pub mod kraken;
pub mod rates;
pub mod sim;
pub mod upstream;
