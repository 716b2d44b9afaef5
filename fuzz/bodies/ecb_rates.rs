//! The ECB daily rates file as the fiat rates adapter reads an HTTP body: `parse_ecb_daily`,
//! then the message of each pair it publishes on `rates:ecb:<BASE>/<QUOTE>`.
//!
//! Nothing may panic; what parses is what the parser promises (a real date, at least one rate,
//! unique 3-letter codes other than EUR, positive finite rates whose text reads back as the
//! rate), each pair's channel names that pair again, its rate is the inverse of the reverse
//! pair's, and its message is data the Router takes.

use rpc_crypto_proto::rates::{channel, parse_channel, parse_ecb_daily, EUR};

use super::support::published;

/// Pairs are checked among the first few currencies: the file may list hundreds.
const PAIRED: usize = 6;

pub fn run(data: &[u8]) {
    let Ok(rates) = parse_ecb_daily(data) else {
        return;
    };
    assert!(!rates.is_empty());
    assert_eq!(rates.clone().with_date(rates.date()), Ok(rates.clone()));
    let mut codes: Vec<&str> = Vec::new();
    for rate in rates.rates() {
        let code = rate.currency.as_str();
        assert!(code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) && code != EUR);
        assert!(!codes.contains(&code), "{code} listed once");
        codes.push(code);
        assert!(rate.value.is_finite() && rate.value > 0.0);
        assert_eq!(rate.text.parse::<f64>(), Ok(rate.value));
    }
    let paired: Vec<&str> = std::iter::once(EUR)
        .chain(codes.iter().copied().take(PAIRED))
        .collect();
    for &base in &paired {
        for &quote in &paired {
            assert_eq!(parse_channel(&channel(base, quote)), Some((base, quote)));
            let Some(message) = rates.rate_message(base, quote) else {
                // Only extreme rates, whose quotient overflows, have none.
                assert!(base != quote && rates.rate(base, quote).is_none());
                continue;
            };
            published(&message);
            let rate = rates.rate(base, quote).expect("a message has a rate");
            if let Some(reverse) = rates.rate(quote, base) {
                let product = rate * reverse;
                assert!(
                    (product - 1.0).abs() < 1e-9,
                    "{base}/{quote}: {rate} × {reverse}"
                );
            }
        }
    }
}
