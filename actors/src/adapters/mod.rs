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
pub mod record;
pub mod replay;
pub mod sim;
pub mod upstream;

/// `text` cut to at most `max` bytes, on a character boundary: the reasons adapters put in their
/// notices come from the outside (an exchange's error text) and must stay small.
pub(crate) fn truncated(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
