//! The `sim` engine's records in ccxt's unified structures, and ccxt's requests in the engine's
//! terms. The engine counts in exact integer units; floats appear only here, at the edge, as
//! ccxt's JSON has them.

use rpc_crypto_proto::ccxt::{self, ErrorKind, Info, Symbol};

use super::accounts::Balance as EngineBalance;
use super::engine::{
    self, ExchangeError as EngineError, Fee, Fill, Market, Order, OrderStatus, OrderType,
    PublicTrade, Side, TakerOrMaker, TimeInForce,
};
use crate::adapters::contract::ExchangeError;

pub fn side(side: Side) -> ccxt::Side {
    match side {
        Side::Buy => ccxt::Side::Buy,
        Side::Sell => ccxt::Side::Sell,
    }
}

fn order_type(kind: OrderType) -> ccxt::OrderType {
    match kind {
        OrderType::Limit => ccxt::OrderType::Limit,
        OrderType::Market => ccxt::OrderType::Market,
    }
}

fn status(status: OrderStatus) -> ccxt::OrderStatus {
    match status {
        OrderStatus::Open => ccxt::OrderStatus::Open,
        OrderStatus::Closed => ccxt::OrderStatus::Closed,
        OrderStatus::Canceled => ccxt::OrderStatus::Canceled,
        OrderStatus::Expired => ccxt::OrderStatus::Expired,
        OrderStatus::Rejected => ccxt::OrderStatus::Rejected,
    }
}

fn time_in_force(tif: TimeInForce, post_only: bool) -> ccxt::TimeInForce {
    match tif {
        TimeInForce::Gtc if post_only => ccxt::TimeInForce::Po,
        TimeInForce::Gtc => ccxt::TimeInForce::Gtc,
        TimeInForce::Ioc => ccxt::TimeInForce::Ioc,
        TimeInForce::Fok => ccxt::TimeInForce::Fok,
    }
}

fn fee(fee: &Fee) -> ccxt::Fee {
    ccxt::Fee {
        cost: Some(fee.cost_f64()),
        currency: Some(fee.currency.clone()),
        rate: fee.rate(),
    }
}

/// A market as `load_markets` describes it.
pub fn market(market: &Market, fees: engine::FeeSchedule) -> ccxt::Market {
    let symbol = Symbol::spot(&market.base, &market.quote).expect("configured markets are valid");
    let id = format!("{}{}", market.base, market.quote);
    let mut out = ccxt::Market::new(id, &symbol, &market.base, &market.quote);
    out.active = Some(true);
    out.taker = Some(f64::from(fees.taker_ppm) / 1e6);
    out.maker = Some(f64::from(fees.maker_ppm) / 1e6);
    out.percentage = Some(true);
    out.tier_based = Some(false);
    out.fee_side = Some(ccxt::FeeSide::Get);
    let tick = 10f64.powi(-(market.price_decimals as i32));
    let lot = 10f64.powi(-(market.amount_decimals as i32));
    out.precision = ccxt::Precision {
        price: Some(tick),
        amount: Some(lot),
        cost: None,
    };
    out.limits.amount.min = Some(market.amount_to_f64(market.min_amount));
    out.limits.price.min = Some(tick);
    out
}

/// A public trade (`trades:sim:<symbol>`, `fetch_trades`).
pub fn public_trade(market: &Market, trade: &PublicTrade) -> ccxt::Trade {
    let mut out = ccxt::Trade::new(
        trade.symbol.clone(),
        trade.timestamp as i64,
        side(trade.side),
        market.price_to_f64(trade.price),
        market.amount_to_f64(trade.amount),
    );
    out.id = Some(trade.id.to_string());
    out.cost = Some(market.cost_to_f64(trade.cost));
    out
}

/// One side of a trade, as its account sees it (`mytrades:sim#<user>`, `fetch_my_trades`).
pub fn fill(market: &Market, fill: &Fill, kind: Option<OrderType>) -> ccxt::Trade {
    let mut out = ccxt::Trade::new(
        fill.symbol.clone(),
        fill.timestamp as i64,
        side(fill.side),
        market.price_to_f64(fill.price),
        market.amount_to_f64(fill.amount),
    );
    out.id = Some(fill.id.to_string());
    out.order = Some(fill.order_id.to_string());
    out.order_type = kind.map(order_type);
    out.taker_or_maker = Some(match fill.taker_or_maker {
        TakerOrMaker::Taker => ccxt::TakerOrMaker::Taker,
        TakerOrMaker::Maker => ccxt::TakerOrMaker::Maker,
    });
    out.cost = Some(market.cost_to_f64(fill.cost));
    let fee = fee(&fill.fee);
    out.fees = vec![fee.clone()];
    out.fee = Some(fee);
    out
}

/// An order (`orders:sim#<user>`, `create_order`, `fetch_order` ...).
pub fn order(market: &Market, order: &Order) -> ccxt::Order {
    let mut out = ccxt::Order::new(
        order.id.to_string(),
        order.symbol.clone(),
        order_type(order.order_type),
        side(order.side),
        market.amount_to_f64(order.amount),
        order.price.map(|p| market.price_to_f64(p)),
        order.timestamp as i64,
    );
    out.client_order_id = order.client_order_id.clone();
    out.last_trade_timestamp = order.last_trade_timestamp.map(|t| t as i64);
    out.status = Some(status(order.status));
    out.time_in_force = Some(time_in_force(order.time_in_force, order.post_only));
    out.post_only = Some(order.post_only);
    out.reduce_only = Some(false);
    out.filled = Some(market.amount_to_f64(order.filled));
    out.remaining = Some(market.amount_to_f64(order.remaining()));
    out.cost = Some(market.cost_to_f64(order.cost));
    out.average = order.average_f64(market);
    out.fee = Some(fee(&order.fee));
    out
}

/// An account's balances (`balance:sim#<user>`, `fetch_balance`).
pub fn balance(balance: &EngineBalance, now_ms: i64) -> ccxt::Balance {
    let mut out = ccxt::Balance::new(now_ms);
    for (code, b) in &balance.currencies {
        let account =
            ccxt::Account::new(Some(b.free_f64()), Some(b.used_f64()), Some(b.total_f64()));
        // Currency codes come from the configured markets, which are valid ccxt codes.
        let _ = out.insert(code.clone(), account);
    }
    out.info = Info::NONE;
    out
}

/// The engine's refusal as the ccxt error a client gets (the kind names what went wrong, the
/// message says what of it).
pub fn error(error: EngineError) -> ExchangeError {
    let (kind, message) = match error {
        EngineError::BadSymbol(symbol) => (
            ErrorKind::BadSymbol,
            format!("sim has no market {symbol:?}"),
        ),
        EngineError::InvalidOrder(message) => (ErrorKind::InvalidOrder, message),
        EngineError::OrderImmediatelyFillable => (
            ErrorKind::InvalidOrder,
            "post-only order would take liquidity".to_owned(),
        ),
        EngineError::OrderNotFillable => (
            ErrorKind::InvalidOrder,
            "fill-or-kill order cannot be filled completely".to_owned(),
        ),
        EngineError::InsufficientFunds(message) => (ErrorKind::InsufficientFunds, message),
        EngineError::OrderNotFound(id) => (ErrorKind::OrderNotFound, format!("no order {id}")),
        EngineError::AccountNotFound => {
            (ErrorKind::AuthenticationError, "not logged in".to_owned())
        }
        EngineError::InvalidConfig(message) => (ErrorKind::BadRequest, message),
    };
    ExchangeError::new(kind, message)
}
