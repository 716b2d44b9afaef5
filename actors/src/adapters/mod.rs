//! Exchange adapters: the exchanges the broker trades on. [`sim`] is the built-in paper-trading
//! exchange; [`contract`] is what every adapter answers.

pub mod capture;
pub mod contract;
pub mod rates;
pub mod sim;
