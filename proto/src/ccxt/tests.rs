//! Checks every structure's JSON against the ccxt Manual's field lists (names and types), the
//! ISO 8601 writer against known instants, and the symbol parser.
//!
//! The field lists are copied from `shared/reference/market-data.md` (ccxt Manual,
//! `ts/src/base/types.ts`); the serialized key set must equal each list exactly, both when every
//! value is known and when every optional value is unknown (`null`, never a missing key).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::time::{civil_from_days, days_from_civil};
use super::*;

// ---------------------------------------------------------------- the ccxt Manual's field lists

use super::fields::*;

// ---------------------------------------------------------------- JSON type checks

/// The JSON type a field must have.
#[derive(Debug, Clone, Copy)]
enum Ty {
    /// A string.
    Str,
    /// A string or null.
    StrOrNull,
    /// One of these strings, or null when `nullable`.
    OneOf(&'static [&'static str], bool),
    /// A number.
    Num,
    /// A number or null.
    NumOrNull,
    /// An integer (timestamps, nonces) or null.
    IntOrNull,
    /// `true` or `false`.
    Bool,
    /// A boolean or null.
    BoolOrNull,
    /// ISO 8601 with milliseconds and Z, or null.
    DatetimeOrNull,
    /// An object (checked separately).
    Object,
    /// An object or null (checked separately).
    ObjectOrNull,
    /// An array (checked separately).
    Array,
    /// Anything (the exchange's raw message).
    Any,
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, checked character by character.
fn is_iso8601_ms(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 24
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 | 16 => *b == b':',
            19 => *b == b'.',
            23 => *b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

fn has_type(value: &Value, ty: Ty) -> bool {
    match ty {
        Ty::Str => value.is_string(),
        Ty::StrOrNull => value.is_string() || value.is_null(),
        Ty::OneOf(allowed, nullable) => match value {
            Value::String(text) => allowed.contains(&text.as_str()),
            Value::Null => nullable,
            _ => false,
        },
        Ty::Num => value.is_number(),
        Ty::NumOrNull => value.is_number() || value.is_null(),
        Ty::IntOrNull => value.is_i64() || value.is_u64() || value.is_null(),
        Ty::Bool => value.is_boolean(),
        Ty::BoolOrNull => value.is_boolean() || value.is_null(),
        Ty::DatetimeOrNull => value.is_null() || value.as_str().is_some_and(is_iso8601_ms),
        Ty::Object => value.is_object(),
        Ty::ObjectOrNull => value.is_object() || value.is_null(),
        Ty::Array => value.is_array(),
        Ty::Any => true,
    }
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// The object's keys are exactly `fields`, `types` covers exactly `fields`, and each value has
/// its type. When the object has both `ms_key` and `iso_key`, the text is the milliseconds'.
fn check_structure(name: &str, value: &Value, fields: &[&str], types: &[(&str, Ty)]) {
    let expected: BTreeSet<&str> = fields.iter().copied().collect();
    assert_eq!(
        expected.len(),
        fields.len(),
        "{name}: duplicate in the Manual list"
    );
    assert_eq!(
        keys(value),
        expected,
        "{name}: key set differs from the ccxt Manual"
    );
    let typed: BTreeSet<&str> = types.iter().map(|(key, _)| *key).collect();
    assert_eq!(
        typed, expected,
        "{name}: the type table must cover exactly the Manual list"
    );
    for (key, ty) in types {
        let field = &value[*key];
        assert!(has_type(field, *ty), "{name}.{key} = {field} is not {ty:?}");
    }
    for (ms_key, iso_key) in [("timestamp", "datetime"), ("expiry", "expiryDatetime")] {
        if let Some(ms) = value.get(ms_key) {
            let expected = ms.as_i64().map(iso8601);
            assert_eq!(
                value[iso_key].as_str().map(str::to_owned),
                expected,
                "{name}.{iso_key} must be {name}.{ms_key} in ISO 8601"
            );
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializes")
}

/// Serialize, read back, and compare: the JSON is also readable by Rust clients.
fn round_trip<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_string(value).expect("serializes");
    let back: T = serde_json::from_str(&text).expect("reads back");
    assert_eq!(&back, value, "round trip through {text}");
}

const TS: i64 = 1_499_280_434_692;
const TS_ISO: &str = "2017-07-05T18:47:14.692Z";
const SIDES: &[&str] = &["buy", "sell"];
const ORDER_TYPES: &[&str] = &["limit", "market"];

fn raw_info() -> Info {
    Info::from_json(r#"{"e":"trade","E":1499280434692,"p":"0.001","list":[1,2,{"x":null}]}"#)
        .expect("valid JSON")
}

// ---------------------------------------------------------------- Market

fn market_types() -> Vec<(&'static str, Ty)> {
    vec![
        ("id", Ty::Str),
        ("symbol", Ty::Str),
        ("base", Ty::Str),
        ("quote", Ty::Str),
        ("baseId", Ty::Str),
        ("quoteId", Ty::Str),
        ("active", Ty::BoolOrNull),
        (
            "type",
            Ty::OneOf(&["spot", "swap", "future", "option"], false),
        ),
        ("spot", Ty::Bool),
        ("margin", Ty::Bool),
        ("swap", Ty::Bool),
        ("future", Ty::Bool),
        ("option", Ty::Bool),
        ("contract", Ty::Bool),
        ("settle", Ty::StrOrNull),
        ("settleId", Ty::StrOrNull),
        ("contractSize", Ty::NumOrNull),
        ("linear", Ty::BoolOrNull),
        ("inverse", Ty::BoolOrNull),
        ("expiry", Ty::IntOrNull),
        ("expiryDatetime", Ty::DatetimeOrNull),
        ("strike", Ty::NumOrNull),
        ("optionType", Ty::OneOf(&["call", "put"], true)),
        ("taker", Ty::NumOrNull),
        ("maker", Ty::NumOrNull),
        ("percentage", Ty::BoolOrNull),
        ("tierBased", Ty::BoolOrNull),
        (
            "feeSide",
            Ty::OneOf(&["get", "give", "base", "quote", "other"], true),
        ),
        ("precision", Ty::Object),
        ("limits", Ty::Object),
        ("info", Ty::Any),
    ]
}

fn check_market(value: &Value) {
    check_structure("Market", value, MARKET_FIELDS, &market_types());
    let num = |key| (key, Ty::NumOrNull);
    check_structure(
        "Market.precision",
        &value["precision"],
        PRECISION_FIELDS,
        &[num("price"), num("amount"), num("cost")],
    );
    let limits = &value["limits"];
    let objects: Vec<_> = LIMITS_FIELDS.iter().map(|key| (*key, Ty::Object)).collect();
    check_structure("Market.limits", limits, LIMITS_FIELDS, &objects);
    for key in LIMITS_FIELDS {
        check_structure(
            "Market.limits.*",
            &limits[*key],
            MINMAX_FIELDS,
            &[num("min"), num("max")],
        );
    }
}

fn full_market() -> Market {
    let symbol = Symbol::parse("BTC/USD:BTC-211231").expect("valid");
    let mut market = Market::new("XBTUSDZ21", &symbol, "XBT", "USD");
    market.active = Some(true);
    market.settle_id = Some("XBT".into());
    market.contract_size = Some(1.0);
    market.expiry = Expiry::ms(1_640_937_600_000);
    market.taker = Some(0.0005);
    market.maker = Some(-0.0001);
    market.percentage = Some(true);
    market.tier_based = Some(false);
    market.fee_side = Some(FeeSide::Quote);
    market.precision = Precision {
        price: Some(0.5),
        amount: Some(1.0),
        cost: None,
    };
    market.limits.amount = MinMax {
        min: Some(1.0),
        max: Some(1e7),
    };
    market.limits.leverage.max = Some(100.0);
    market.info = raw_info();
    market
}

#[test]
fn market_fields_match_ccxt_manual() {
    let spot = Market::new(
        "BTCUSDT",
        &Symbol::parse("BTC/USDT").expect("valid"),
        "BTC",
        "USDT",
    );
    let option = Market::new(
        "BTC-31DEC21-60000-C",
        &Symbol::parse("BTC/USD:BTC-211231-60000-C").expect("valid"),
        "BTC",
        "USD",
    );
    for market in [spot, full_market(), option] {
        let value = to_json(&market);
        check_market(&value);
        round_trip(&market);
    }
}

#[test]
fn market_flags_follow_the_symbol() {
    let spot = to_json(&Market::new(
        "BTCUSDT",
        &Symbol::parse("BTC/USDT").expect("valid"),
        "BTC",
        "USDT",
    ));
    assert_eq!(spot["type"], "spot");
    assert_eq!(
        (&spot["spot"], &spot["contract"], &spot["swap"]),
        (&json!(true), &json!(false), &json!(false))
    );
    assert_eq!(
        (&spot["settle"], &spot["linear"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(
        spot["limits"]["leverage"],
        json!({"min": null, "max": null})
    );

    let linear = Market::new(
        "BTCUSDT",
        &Symbol::parse("BTC/USDT:USDT").expect("valid"),
        "BTC",
        "USDT",
    );
    assert_eq!(linear.market_type, MarketType::Swap);
    assert!(linear.swap && linear.contract && !linear.spot);
    assert_eq!((linear.linear, linear.inverse), (Some(true), Some(false)));

    let future = to_json(&full_market());
    assert_eq!(future["type"], "future");
    assert_eq!(
        (&future["linear"], &future["inverse"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(future["expiryDatetime"], "2021-12-31T08:00:00.000Z");
    assert_eq!(future["info"]["list"][2], json!({"x": null}));

    let option = Market::new(
        "x",
        &Symbol::parse("ETH/USD:ETH-240329-3500.5-P").expect("valid"),
        "ETH",
        "USD",
    );
    assert_eq!(option.strike, Some(3500.5));
    assert_eq!(option.option_type, Some(OptionType::Put));
    assert!(option.option && option.contract);
}

// ---------------------------------------------------------------- Ticker

fn ticker_types() -> Vec<(&'static str, Ty)> {
    let mut types = vec![
        ("symbol", Ty::Str),
        ("timestamp", Ty::IntOrNull),
        ("datetime", Ty::DatetimeOrNull),
        ("info", Ty::Any),
    ];
    for key in TICKER_FIELDS {
        if !types.iter().any(|(known, _)| known == key) {
            types.push((key, Ty::NumOrNull)); // every other ticker field is a number
        }
    }
    types
}

#[test]
fn ticker_fields_match_ccxt_manual() {
    let empty = Ticker::new("BTC/USDT", Timestamp::NONE);
    let mut full = Ticker::new("BTC/USDT", TS);
    full.high = Some(2600.0);
    full.low = Some(2400.0);
    full.bid = Some(2500.0);
    full.bid_volume = Some(1.5);
    full.ask = Some(2500.5);
    full.ask_volume = Some(0.25);
    full.vwap = Some(2510.0);
    full.open = Some(2450.0);
    full.last = Some(2500.25);
    full.previous_close = Some(2449.0);
    full.base_volume = Some(1000.0);
    full.quote_volume = Some(2_510_000.0);
    full.info = raw_info();
    full.complete();
    for ticker in [&empty, &full] {
        let value = to_json(ticker);
        check_structure("Ticker", &value, TICKER_FIELDS, &ticker_types());
        round_trip(ticker);
    }
    let value = to_json(&full);
    assert_eq!(
        (value["timestamp"].as_i64(), value["datetime"].as_str()),
        (Some(TS), Some(TS_ISO))
    );
    assert_eq!(value["close"], 2500.25);
    assert_eq!(value["change"], 50.25);
    assert_eq!(value["average"], 2475.125);
    assert!((full.percentage.unwrap_or_default() - 50.25 / 2450.0 * 100.0).abs() < 1e-12);
    let value = to_json(&empty);
    assert!(TICKER_FIELDS
        .iter()
        .filter(|key| **key != "symbol")
        .all(|key| value[*key].is_null()));
}

// ---------------------------------------------------------------- OrderBook

#[test]
fn order_book_fields_match_ccxt_manual() {
    let types = [
        ("symbol", Ty::Str),
        ("bids", Ty::Array),
        ("asks", Ty::Array),
        ("timestamp", Ty::IntOrNull),
        ("datetime", Ty::DatetimeOrNull),
        ("nonce", Ty::IntOrNull),
    ];
    let empty = OrderBook::new("ETH/BTC", vec![], vec![], Timestamp::NONE, None);
    let full = OrderBook::new(
        "ETH/BTC",
        vec![[0.05, 1.0], [0.07, 2.0], [0.06, 3.0]],
        vec![[0.09, 1.0], [0.08, 2.5]],
        TS,
        Some(499_869_752),
    );
    for book in [&empty, &full] {
        let value = to_json(book);
        check_structure("OrderBook", &value, ORDER_BOOK_FIELDS, &types);
        for side in ["bids", "asks"] {
            for level in value[side].as_array().into_iter().flatten() {
                let level = level.as_array().expect("a level is an array");
                assert_eq!(level.len(), 2, "[price, amount]");
                assert!(level.iter().all(Value::is_number));
            }
        }
        round_trip(book);
    }
    let value = to_json(&full);
    assert_eq!(
        value["bids"],
        json!([[0.07, 2.0], [0.06, 3.0], [0.05, 1.0]]),
        "descending"
    );
    assert_eq!(
        value["asks"],
        json!([[0.08, 2.5], [0.09, 1.0]]),
        "ascending"
    );
    assert_eq!(value["nonce"], 499_869_752);
    assert_eq!(full.best_bid(), Some([0.07, 2.0]));
    assert_eq!(full.best_ask(), Some([0.08, 2.5]));
    let mut top = full.clone();
    top.truncate(1);
    assert_eq!((top.bids.len(), top.asks.len()), (1, 1));
}

// ---------------------------------------------------------------- Trade and Fee

fn trade_types() -> Vec<(&'static str, Ty)> {
    vec![
        ("id", Ty::StrOrNull),
        ("timestamp", Ty::IntOrNull),
        ("datetime", Ty::DatetimeOrNull),
        ("symbol", Ty::Str),
        ("order", Ty::StrOrNull),
        ("type", Ty::OneOf(ORDER_TYPES, true)),
        ("side", Ty::OneOf(SIDES, false)),
        ("takerOrMaker", Ty::OneOf(&["taker", "maker"], true)),
        ("price", Ty::Num),
        ("amount", Ty::Num),
        ("cost", Ty::NumOrNull),
        ("fee", Ty::ObjectOrNull),
        ("fees", Ty::Array),
        ("info", Ty::Any),
    ]
}

fn fee_types() -> [(&'static str, Ty); 3] {
    [
        ("cost", Ty::NumOrNull),
        ("currency", Ty::StrOrNull),
        ("rate", Ty::NumOrNull),
    ]
}

fn check_trade(value: &Value) {
    check_structure("Trade", value, TRADE_FIELDS, &trade_types());
    let fees = value["fees"].as_array().into_iter().flatten();
    for fee in std::iter::once(&value["fee"])
        .chain(fees)
        .filter(|fee| !fee.is_null())
    {
        check_structure("Fee", fee, FEE_FIELDS, &fee_types());
    }
}

fn own_trade() -> Trade {
    let mut trade = Trade::new("BTC/USDT", TS, Side::Buy, 2500.0, 0.5);
    trade.id = Some("12345".into());
    trade.order = Some("987".into());
    trade.order_type = Some(OrderType::Limit);
    trade.taker_or_maker = Some(TakerOrMaker::Maker);
    let fee = Fee {
        cost: Some(1.25),
        currency: Some("USDT".into()),
        rate: Some(0.001),
    };
    trade.fee = Some(fee.clone());
    trade.fees = vec![fee];
    trade.info = raw_info();
    trade
}

#[test]
fn trade_fields_match_ccxt_manual() {
    let public = Trade::new("BTC/USDT", Timestamp::NONE, Side::Sell, 2500.0, 0.5);
    for trade in [&public, &own_trade()] {
        check_trade(&to_json(trade));
        round_trip(trade);
    }
    let value = to_json(&public);
    assert_eq!(value["cost"], 1250.0, "price × amount");
    assert_eq!((&value["fee"], &value["fees"]), (&Value::Null, &json!([])));
    let value = to_json(&own_trade());
    assert_eq!(
        value["fee"],
        json!({"cost": 1.25, "currency": "USDT", "rate": 0.001})
    );
    assert_eq!(value["datetime"], TS_ISO);
    assert_eq!(
        value["info"]["E"], TS,
        "info embedded as JSON, not as a string"
    );
    check_structure("Fee", &to_json(&Fee::default()), FEE_FIELDS, &fee_types());
}

// ---------------------------------------------------------------- OHLCV

#[test]
fn ohlcv_is_a_six_element_array() {
    let candle = Ohlcv::new(TS, 2450.0, 2600.5, 2400.0, 2500.25, 12.5);
    let value = to_json(&candle);
    assert_eq!(value, json!([TS, 2450.0, 2600.5, 2400.0, 2500.25, 12.5]));
    let items = value.as_array().expect("an array");
    assert_eq!(items.len(), 6);
    assert!(items[0].is_i64(), "timestamp is an integer");
    assert!(items[1..].iter().all(|item| item.is_f64() || item.is_i64()));
    round_trip(&candle);
    // Integral prices as written by other producers read too.
    let read: Ohlcv = serde_json::from_str("[0,1,2,0.5,1.5,10]").expect("six numbers");
    assert_eq!(read, Ohlcv::new(0, 1.0, 2.0, 0.5, 1.5, 10.0));
    for bad in [
        "[0,1,2,3,4]",
        "[0,1,2,3,4,5,6]",
        "{\"timestamp\":0}",
        "[1.5,1,2,3,4,5]",
    ] {
        assert!(
            serde_json::from_str::<Ohlcv>(bad).is_err(),
            "{bad} must be refused"
        );
    }
}

// ---------------------------------------------------------------- Order

fn order_types() -> Vec<(&'static str, Ty)> {
    vec![
        ("id", Ty::Str),
        ("clientOrderId", Ty::StrOrNull),
        ("timestamp", Ty::IntOrNull),
        ("datetime", Ty::DatetimeOrNull),
        ("lastTradeTimestamp", Ty::IntOrNull),
        (
            "status",
            Ty::OneOf(&["open", "closed", "canceled", "expired", "rejected"], true),
        ),
        ("symbol", Ty::Str),
        ("type", Ty::OneOf(ORDER_TYPES, false)),
        ("timeInForce", Ty::OneOf(&["GTC", "IOC", "FOK", "PO"], true)),
        ("side", Ty::OneOf(SIDES, false)),
        ("price", Ty::NumOrNull),
        ("average", Ty::NumOrNull),
        ("amount", Ty::Num),
        ("filled", Ty::NumOrNull),
        ("remaining", Ty::NumOrNull),
        ("cost", Ty::NumOrNull),
        ("trades", Ty::Array),
        ("fee", Ty::ObjectOrNull),
        ("triggerPrice", Ty::NumOrNull),
        ("reduceOnly", Ty::BoolOrNull),
        ("postOnly", Ty::BoolOrNull),
        ("info", Ty::Any),
    ]
}

#[test]
fn order_fields_match_ccxt_manual() {
    let fresh = Order::new(
        "1",
        "BTC/USDT",
        OrderType::Market,
        Side::Sell,
        0.5,
        None,
        TS,
    );
    let mut empty = fresh.clone();
    empty.timestamp = Timestamp::NONE;
    empty.status = None;
    empty.filled = None;
    empty.remaining = None;
    empty.cost = None;
    let mut full = Order::new(
        "2",
        "BTC/USDT",
        OrderType::Limit,
        Side::Buy,
        1.0,
        Some(2500.0),
        TS,
    );
    full.client_order_id = Some("my-1".into());
    full.last_trade_timestamp = Some(TS + 5);
    full.status = Some(OrderStatus::Closed);
    full.time_in_force = Some(TimeInForce::Gtc);
    full.average = Some(2500.0);
    full.filled = Some(1.0);
    full.remaining = Some(0.0);
    full.cost = Some(2500.0);
    full.trades = vec![own_trade(), own_trade()];
    full.fee = own_trade().fee;
    full.trigger_price = Some(2400.0);
    full.reduce_only = Some(false);
    full.post_only = Some(true);
    full.info = raw_info();
    for order in [&fresh, &empty, &full] {
        let value = to_json(order);
        check_structure("Order", &value, ORDER_FIELDS, &order_types());
        for trade in value["trades"].as_array().into_iter().flatten() {
            check_trade(trade);
        }
        if !value["fee"].is_null() {
            check_structure("Order.fee", &value["fee"], FEE_FIELDS, &fee_types());
        }
        round_trip(order);
    }
    let value = to_json(&fresh);
    assert_eq!(
        (
            &value["status"],
            &value["filled"],
            &value["remaining"],
            &value["price"]
        ),
        (&json!("open"), &json!(0.0), &json!(0.5), &Value::Null)
    );
    let value = to_json(&full);
    assert_eq!(
        (&value["timeInForce"], &value["status"]),
        (&json!("GTC"), &json!("closed"))
    );
    assert_eq!(value["trades"].as_array().map(Vec::len), Some(2));
}

// ---------------------------------------------------------------- Balance

#[test]
fn balance_has_ccxt_shape() {
    let mut balance = Balance::new(TS);
    balance.info = raw_info();
    balance
        .insert("BTC", Account::new(Some(1.5), Some(0.5), None))
        .expect("valid code");
    balance
        .insert("USDT", Account::new(Some(100.0), None, None))
        .expect("valid code");
    let value = to_json(&balance);

    let mut fields = BALANCE_FIELDS.to_vec();
    fields.extend(["BTC", "USDT"]);
    let mut types = vec![
        ("info", Ty::Any),
        ("timestamp", Ty::IntOrNull),
        ("datetime", Ty::DatetimeOrNull),
    ];
    types.extend(["free", "used", "total", "BTC", "USDT"].map(|key| (key, Ty::Object)));
    check_structure("Balance", &value, &fields, &types);
    for column in ["free", "used", "total"] {
        let codes = [("BTC", Ty::NumOrNull), ("USDT", Ty::NumOrNull)];
        check_structure(column, &value[column], &["BTC", "USDT"], &codes);
    }
    let account_types: Vec<_> = ACCOUNT_FIELDS
        .iter()
        .map(|key| (*key, Ty::NumOrNull))
        .collect();
    for code in ["BTC", "USDT"] {
        check_structure(code, &value[code], ACCOUNT_FIELDS, &account_types);
        for column in ACCOUNT_FIELDS {
            assert_eq!(
                value[code][*column], value[*column][code],
                "{code}.{column}"
            );
        }
    }
    assert_eq!(
        value["BTC"],
        json!({"free": 1.5, "used": 0.5, "total": 2.0}),
        "total derived"
    );
    assert_eq!(
        value["USDT"],
        json!({"free": 100.0, "used": null, "total": null})
    );
    assert_eq!(value["datetime"], TS_ISO);
    round_trip(&balance);

    let empty = to_json(&Balance::default());
    assert_eq!(
        empty,
        json!({"info": null, "timestamp": null, "datetime": null,
               "free": {}, "used": {}, "total": {}})
    );
}

#[test]
fn balance_refuses_codes_that_collide_with_its_keys() {
    let mut balance = Balance::default();
    for reserved in BALANCE_FIELDS {
        assert_eq!(
            balance.insert(*reserved, Account::default()),
            Err(BalanceError::Reserved(reserved))
        );
    }
    assert_eq!(
        balance.insert("", Account::default()),
        Err(BalanceError::Empty)
    );
    assert!(balance.is_empty());
    assert_eq!(balance.insert("ETH", Account::default()), Ok(None));
    assert_eq!(balance.len(), 1);
}

#[test]
fn account_completes_like_safe_balance() {
    assert_eq!(
        Account::new(None, Some(1.0), Some(3.0)),
        Account {
            free: Some(2.0),
            used: Some(1.0),
            total: Some(3.0)
        }
    );
    assert_eq!(Account::new(Some(2.0), None, Some(3.0)).used, Some(1.0));
    assert_eq!(
        Account::new(Some(2.0), None, None),
        Account {
            free: Some(2.0),
            used: None,
            total: None
        }
    );
}

// ---------------------------------------------------------------- enums and errors

#[test]
fn enums_use_ccxt_strings() {
    fn strings<T: serde::Serialize>(all: &[T]) -> Vec<String> {
        all.iter()
            .map(|item| to_json(item).as_str().expect("a string").to_owned())
            .collect()
    }
    assert_eq!(strings(Side::ALL), ["buy", "sell"]);
    assert_eq!(strings(OrderType::ALL), ["limit", "market"]);
    assert_eq!(
        strings(OrderStatus::ALL),
        ["open", "closed", "canceled", "expired", "rejected"]
    );
    assert_eq!(strings(TimeInForce::ALL), ["GTC", "IOC", "FOK", "PO"]);
    assert_eq!(strings(TakerOrMaker::ALL), ["taker", "maker"]);
    assert_eq!(
        strings(MarketType::ALL),
        ["spot", "swap", "future", "option"]
    );
    assert_eq!(strings(OptionType::ALL), ["call", "put"]);
    assert_eq!(
        strings(FeeSide::ALL),
        ["get", "give", "base", "quote", "other"]
    );
    assert_eq!("sell".parse::<Side>(), Ok(Side::Sell));
    assert_eq!(Side::Buy.opposite(), Side::Sell);
    let err = "Buy".parse::<Side>().expect_err("case matters, as in ccxt");
    assert_eq!(err.to_string(), "unknown Side \"Buy\"");
    assert!(serde_json::from_str::<OrderStatus>("\"cancelled\"").is_err());
}

#[test]
fn error_kinds_have_ccxt_names_and_codes() {
    let table = [
        (1201, "AuthenticationError", false),
        (1202, "PermissionDenied", false),
        (1203, "InsufficientFunds", false),
        (1204, "InvalidOrder", false),
        (1205, "OrderNotFound", false),
        (1206, "BadSymbol", false),
        (1207, "BadRequest", false),
        (1208, "NotSupported", false),
        (1209, "NetworkError", true),
        (1210, "RateLimitExceeded", true),
        (1211, "ExchangeNotAvailable", true),
        (1212, "RequestTimeout", true),
        (1213, "InvalidNonce", true),
    ];
    assert_eq!(ErrorKind::ALL.len(), table.len());
    for (kind, (code, name, temporary)) in ErrorKind::ALL.iter().zip(table) {
        assert_eq!(
            (kind.code(), kind.name(), kind.temporary()),
            (code, name, temporary)
        );
        assert_eq!(ErrorKind::from_code(code), Some(*kind));
        assert_eq!(name.parse::<ErrorKind>(), Ok(*kind));
        assert_eq!(to_json(kind), json!(name));
    }
    for code in [0, 1200, 1214, u32::MAX] {
        assert_eq!(ErrorKind::from_code(code), None);
    }
}

// ---------------------------------------------------------------- time

#[test]
fn iso8601_of_known_instants() {
    let cases = [
        (0, "1970-01-01T00:00:00.000Z"),
        (TS, TS_ISO),
        (-1, "1969-12-31T23:59:59.999Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"), // leap day of a year divisible by 400
        (1_582_979_696_789, "2020-02-29T12:34:56.789Z"), // leap day
        (1_583_020_800_000, "2020-03-01T00:00:00.000Z"),
        (4_107_542_399_999, "2100-02-28T23:59:59.999Z"), // 2100 is not a leap year...
        (4_107_542_400_000, "2100-03-01T00:00:00.000Z"), // ...so March follows February 28
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        (253_402_300_800_000, "+010000-01-01T00:00:00.000Z"), // JavaScript's expanded year
        (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
        (-62_167_219_200_001, "-000001-12-31T23:59:59.999Z"),
    ];
    for (ms, text) in cases {
        assert_eq!(iso8601(ms), text, "{ms}");
        assert_eq!(Iso8601(ms).to_string(), text);
    }
    // Total: the extremes format without panicking.
    assert!(iso8601(i64::MAX).ends_with('Z'));
    assert!(iso8601(i64::MIN).starts_with('-'));
}

#[test]
fn civil_calendar_round_trips() {
    // Every day from 1900 to 2200 maps to a valid date and back, one day after another.
    let start = days_from_civil(1900, 1, 1);
    let mut previous = civil_from_days(start - 1);
    for days in start..days_from_civil(2200, 1, 1) {
        let (year, month, day) = civil_from_days(days);
        assert_eq!(days_from_civil(year, month, day), days);
        let next_day = (year, month, day) == (previous.0, previous.1, previous.2 + 1);
        let next_month = day == 1 && (year, month) == (previous.0, previous.1 + 1);
        let next_year = (month, day) == (1, 1) && year == previous.0 + 1;
        assert!(
            next_day || next_month || next_year,
            "{previous:?} -> {year}-{month}-{day}"
        );
        previous = (year, month, day);
    }
}

#[test]
fn timestamp_writes_both_keys() {
    assert_eq!(
        to_json(&Timestamp::ms(TS)),
        json!({"timestamp": TS, "datetime": TS_ISO})
    );
    assert_eq!(
        to_json(&Timestamp::NONE),
        json!({"timestamp": null, "datetime": null})
    );
    assert_eq!(
        to_json(&Expiry::ms(0)),
        json!({"expiry": 0, "expiryDatetime": "1970-01-01T00:00:00.000Z"})
    );
    assert_eq!(Timestamp::ms(TS).datetime().as_deref(), Some(TS_ISO));
    // Reading trusts the milliseconds; the text is derived from them.
    let read: Timestamp =
        serde_json::from_str(r#"{"datetime":"1999-01-01T00:00:00.000Z","timestamp":5}"#)
            .expect("valid");
    assert_eq!(read, Timestamp::ms(5));
    assert!(serde_json::from_str::<Timestamp>(r#"{"timestamp":1.5}"#).is_err());
}

// ---------------------------------------------------------------- info

/// Found by the fuzz targets `binance`, `coinbase` and `kraken_v1` (fuzz/regressions/): text
/// serde_json's RawValue takes but no publication may hold.
#[test]
fn info_keeps_only_what_a_publication_may_hold() {
    let raw = |text: &str| serde_json::value::RawValue::from_string(text.to_owned()).unwrap();
    for unreadable in [r#"{"x":1e999}"#, r#"["\ud800"]"#] {
        assert!(Info::from_json(unreadable).is_err(), "{unreadable}");
        let info = Info::from(raw(unreadable));
        assert_eq!(info, Info::NONE, "{unreadable}");
        // What the adapters answer calls through: it fails on such text.
        serde_json::to_value(&info).expect("no unreadable text kept");
    }
    let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    assert!(Info::from_json(&deep).is_err());
    assert_eq!(Info::from(raw(&deep)), Info::NONE);
    assert_eq!(Info::from(raw("{\"a\":\n1}")).as_str(), Some("{\"a\": 1}"));
    assert_eq!(
        Info::from_json("{\"a\":\n1}").unwrap().as_str(),
        Some("{\"a\": 1}")
    );
    // At most 64 deep itself, with the structure around it a value may be deeper: refused.
    let deepest = format!("{}{}", "[".repeat(64), "]".repeat(64));
    let mut ticker = Ticker::new("BTC/USDT", Timestamp::NONE);
    ticker.info = Info::from(raw(&deepest));
    assert!(!ticker.info.is_none());
    assert!(crate::json::JsonText::serialize(&ticker).is_err());
}

#[test]
fn info_embeds_raw_json() {
    let info = raw_info();
    assert_eq!(
        serde_json::to_string(&info).expect("serializes"),
        r#"{"e":"trade","E":1499280434692,"p":"0.001","list":[1,2,{"x":null}]}"#,
        "kept byte for byte"
    );
    assert!(Info::from_json("{not json").is_err());
    assert_eq!(Info::from_json("null").expect("valid"), Info::NONE);
    assert_eq!(to_json(&Info::NONE), Value::Null);
    let value = json!({"a": [1, "b"]});
    assert_eq!(to_json(&Info::from_value(&value).expect("valid")), value);
    let read: Trade = serde_json::from_value(to_json(&own_trade())).expect("reads");
    assert_eq!(
        read.info
            .as_str()
            .map(|text| text.contains("\"p\":\"0.001\"")),
        Some(true)
    );
}

// ---------------------------------------------------------------- symbols

#[test]
fn symbols_parse_and_format() {
    let cases = [
        ("BTC/USDT", MarketType::Spot, None, None),
        ("BTC/USDT:USDT", MarketType::Swap, Some("USDT"), None),
        (
            "BTC/USD:BTC-211231",
            MarketType::Future,
            Some("BTC"),
            ExpiryDate::new(2021, 12, 31),
        ),
        (
            "ETH/USDT:USDT-240229",
            MarketType::Future,
            Some("USDT"),
            ExpiryDate::new(2024, 2, 29),
        ),
        (
            "BTC/USD:BTC-211231-60000-C",
            MarketType::Option,
            Some("BTC"),
            ExpiryDate::new(2021, 12, 31),
        ),
        ("1000PEPE/USDT", MarketType::Spot, None, None),
        ("stETH/ETH", MarketType::Spot, None, None),
    ];
    for (text, market_type, settle, expiry) in cases {
        let symbol = Symbol::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(symbol.to_string(), text, "formats back");
        assert_eq!(symbol.market_type(), market_type, "{text}");
        assert_eq!(symbol.settle(), settle, "{text}");
        assert_eq!(symbol.expiry(), expiry, "{text}");
        assert_eq!(to_json(&symbol), json!(text));
        round_trip(&symbol);
    }
    let option = Symbol::parse("BTC/USD:BTC-211231-60000-P").expect("valid");
    assert_eq!((option.base(), option.quote()), ("BTC", "USD"));
    assert!(matches!(
        option.kind(),
        SymbolKind::Option { strike, option_type: OptionType::Put, .. } if strike == "60000"
    ));
    let built = Symbol::future(
        "BTC",
        "USD",
        "BTC",
        ExpiryDate::new(2021, 12, 31).expect("a date"),
    );
    assert_eq!(
        built.map(|s| s.to_string()),
        Ok("BTC/USD:BTC-211231".to_owned())
    );
    assert_eq!(
        Symbol::spot("BTC", "USDT").map(|s| s.to_string()),
        Ok("BTC/USDT".into())
    );
    assert_eq!(
        Symbol::swap("BTC", "USDT", "US-DT"),
        Err(SymbolError::BadCurrency("settle"))
    );
    let strike = Symbol::option(
        "BTC",
        "USD",
        "BTC",
        ExpiryDate::new(2021, 12, 31).expect("a date"),
        "0",
        OptionType::Call,
    );
    assert_eq!(strike, Err(SymbolError::BadStrike));
}

#[test]
fn malformed_symbols_are_refused() {
    use SymbolError::*;
    let long = format!("{}/USDT", "B".repeat(200));
    let cases: &[(&str, SymbolError)] = &[
        ("", Empty),
        (&long, TooLong),
        ("BTCUSDT", MissingSlash),
        ("/USDT", BadCurrency("base")),
        ("BTC/", BadCurrency("quote")),
        ("BTC/USDT/ETH", BadCurrency("quote")),
        ("BTC /USDT", BadCurrency("base")),
        ("BTC/USDT\n", BadCurrency("quote")),
        ("BTC/USDT:", BadCurrency("settle")),
        ("BTC/USDT:US/DT", BadCurrency("settle")),
        ("BTC/USDT:USDT:X", BadCurrency("settle")),
        ("BTC/USD:BTC-", BadExpiry),
        ("BTC/USD:BTC-2112", BadExpiry),
        ("BTC/USD:BTC-211232", BadExpiry),
        ("BTC/USD:BTC-211331", BadExpiry),
        ("BTC/USD:BTC-230229", BadExpiry), // 2023 is not a leap year
        ("BTC/USD:BTC-21123１", BadExpiry), // a non-ASCII digit
        ("BTC/USD:BTC-211231-60000", BadSuffix),
        ("BTC/USD:BTC-211231-60000-X", BadOptionType),
        ("BTC/USD:BTC-211231-60000-C-1", BadSuffix),
        ("BTC/USD:BTC-211231-6e4-C", BadStrike),
        ("BTC/USD:BTC-211231-.5-C", BadStrike),
        ("BTC/USD:BTC-211231-1.2.3-C", BadStrike),
        ("BTC/USD:BTC-211231--C", BadStrike),
    ];
    for (text, error) in cases {
        assert_eq!(Symbol::parse(text), Err(*error), "{text:?}");
    }
    assert!(serde_json::from_str::<Symbol>("\"BTCUSDT\"").is_err());
}

#[test]
fn expiry_dates() {
    assert_eq!(
        ExpiryDate::parse_yymmdd("240229"),
        ExpiryDate::new(2024, 2, 29)
    );
    assert_eq!(ExpiryDate::new(2100, 1, 1), None, "YYMMDD covers 2000-2099");
    assert_eq!(ExpiryDate::new(2021, 4, 31), None);
    assert_eq!(ExpiryDate::new(2021, 1, 0), None);
    let date = ExpiryDate::parse_yymmdd("211231").expect("a date");
    assert_eq!((date.year(), date.month(), date.day()), (2021, 12, 31));
    assert_eq!(date.to_string(), "211231");
    assert_eq!(iso8601(date.midnight_ms()), "2021-12-31T00:00:00.000Z");
    assert_eq!(
        ExpiryDate::parse_yymmdd("050101").map(|d| d.to_string()),
        Some("050101".into())
    );
}

#[test]
fn common_currencies() {
    let cases = [
        ("XBT", "BTC"),
        ("XDG", "DOGE"),
        ("BCC", "BCH"),
        ("BCHSV", "BSV"),
        ("BSV", "BSV"),
        ("BTC", "BTC"),
        ("ETH", "ETH"),
        ("xbt", "xbt"),   // codes are case-sensitive, as in ccxt
        ("XXBT", "XXBT"), // Kraken's asset id: the adapter's business
    ];
    for (exchange, ccxt) in cases {
        assert_eq!(common_currency(exchange), ccxt, "{exchange}");
    }
}
