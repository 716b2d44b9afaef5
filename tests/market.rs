//! The built-in `sim` exchange end to end, with the embedded default config: market channels in
//! ccxt form, paper trading over `exchange.*` rpc with private pushes, bad orders with their
//! ccxt errors, and upstream streams that follow subscribers.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use rpc_crypto_actors::auth::sign_hs256;
use rpc_crypto_proto::ccxt::fields;
use rpc_crypto_proto::codec::Format;
use rpc_crypto_proto::protocol::Reply;
use serde_json::{json, Value};

const SECRET: &str = "market-test-secret-of-at-least-32-bytes";

fn token(user: &str) -> String {
    sign_hs256(
        SECRET.as_bytes(),
        &json!({"sub": user, "exp": unix_now() + 600}),
    )
}

/// Connects as `user` (or anonymously for "").
async fn client(server: &Server, user: &str) -> Client {
    let mut client = Client::open(&server.url, Format::Json).await;
    let token = if user.is_empty() {
        String::new()
    } else {
        token(user)
    };
    let reply = client.call(connect_with_token(1, &token)).await;
    assert_eq!(error_code(&reply), 0, "connect: {reply:?}");
    client
}

/// Calls `exchange.<method>` with `data`; the result, or the error's code and message.
async fn call(
    client: &mut Client,
    id: u32,
    method: &str,
    data: Value,
) -> Result<Value, (u32, String)> {
    let reply = client
        .call(rpc(id, &format!("exchange.{method}"), &data.to_string()))
        .await;
    match reply.error {
        Some(error) => Err((error.code, error.message)),
        None => Ok(rpc_data(&reply)),
    }
}

fn keys(value: &Value) -> HashSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set(names: &[&'static str]) -> HashSet<&'static str> {
    names.iter().copied().collect()
}

#[tokio::test]
async fn market_channels_deliver_ccxt_messages_within_a_second() {
    let server = Server::start_default(&[]);
    let mut client = client(&server, "").await;
    let channels = [
        "ticker:sim:BTC/USDT",
        "book:sim:BTC/USDT",
        "trades:sim:BTC/USDT",
        "ohlcv:sim:BTC/USDT:1m",
    ];
    for (i, channel) in channels.iter().enumerate() {
        let reply = client.call(subscribe(2 + i as u32, channel)).await;
        assert!(reply.subscribe.is_some(), "{channel}: {reply:?}");
    }
    let subscribed = Instant::now();
    let mut first: Vec<Option<(Duration, Value)>> = vec![None; channels.len()];
    while first.iter().any(Option::is_none) {
        let item = client.next_item().await;
        if item.push.as_ref().and_then(|p| p.r#pub.as_ref()).is_none() {
            continue;
        }
        let (channel, data) = publication(&item);
        let i = channels
            .iter()
            .position(|c| *c == channel)
            .expect("a subscribed channel");
        first[i].get_or_insert((subscribed.elapsed(), data));
    }
    for (channel, seen) in channels.iter().zip(&first) {
        let (after, _) = seen.as_ref().unwrap();
        assert!(
            *after < Duration::from_secs(1),
            "{channel}: first message after {after:?}"
        );
    }
    let data = |i: usize| first[i].as_ref().unwrap().1.clone();

    let ticker = data(0);
    assert_eq!(keys(&ticker), set(fields::TICKER_FIELDS));
    assert_eq!(ticker["symbol"], "BTC/USDT");
    let (bid, ask) = (
        ticker["bid"].as_f64().unwrap(),
        ticker["ask"].as_f64().unwrap(),
    );
    assert!(bid < ask, "{ticker}");
    assert!(ticker["timestamp"].is_i64());
    assert!(ticker["datetime"].as_str().unwrap().ends_with('Z'));

    let book = data(1);
    assert_eq!(keys(&book), set(fields::ORDER_BOOK_FIELDS));
    let side = |name: &str| -> Vec<f64> {
        book[name]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l[0].as_f64().unwrap())
            .collect()
    };
    let (bids, asks) = (side("bids"), side("asks"));
    assert!(!bids.is_empty() && !asks.is_empty());
    assert!(
        bids.windows(2).all(|w| w[0] > w[1]),
        "bids descending: {bids:?}"
    );
    assert!(
        asks.windows(2).all(|w| w[0] < w[1]),
        "asks ascending: {asks:?}"
    );
    assert!(bids[0] < asks[0], "not crossed");

    let trade = data(2);
    assert_eq!(keys(&trade), set(fields::TRADE_FIELDS));
    let (price, amount) = (
        trade["price"].as_f64().unwrap(),
        trade["amount"].as_f64().unwrap(),
    );
    assert!((trade["cost"].as_f64().unwrap() - price * amount).abs() < 1e-6 * price);
    assert!(["buy", "sell"].contains(&trade["side"].as_str().unwrap()));

    let candle = data(3);
    let candle = candle
        .as_array()
        .expect("[timestamp, open, high, low, close, volume]");
    assert_eq!(candle.len(), 6);
    assert_eq!(candle[0].as_i64().unwrap() % 60_000, 0, "a minute's start");
    let (open, high, low, close) = (
        candle[1].as_f64().unwrap(),
        candle[2].as_f64().unwrap(),
        candle[3].as_f64().unwrap(),
        candle[4].as_f64().unwrap(),
    );
    assert!(low <= open.min(close) && high >= open.max(close));
    server.assert_no_panic();
}

/// The user's private pushes seen so far, by channel kind (`orders`, `balance`, `mytrades`).
fn private_pushes(client: &mut Client, user: &str) -> Vec<(String, Value)> {
    client
        .take_buffered()
        .into_iter()
        .filter(|item| item.push.as_ref().is_some_and(|p| p.r#pub.is_some()))
        .map(|item| {
            let (channel, data) = publication(&item);
            let (kind, owner) = channel.split_once(":sim#").expect("a private channel");
            assert_eq!(owner, user, "{user} got a push of {owner}");
            (kind.to_owned(), data)
        })
        .collect()
}

async fn wait_pushes(client: &mut Client, count: usize, user: &str) -> Vec<(String, Value)> {
    let mut pushes = Vec::new();
    let deadline = Instant::now() + WAIT;
    while pushes.len() < count && Instant::now() < deadline {
        if let Some(item) = client.try_next_item(Duration::from_millis(100)).await {
            if item.push.as_ref().is_some_and(|p| p.r#pub.is_some()) {
                let (channel, data) = publication(&item);
                let (kind, owner) = channel.split_once(":sim#").expect("a private channel");
                assert_eq!(owner, user, "{user} got a push of {owner}");
                pushes.push((kind.to_owned(), data));
            }
        }
    }
    pushes.extend(private_pushes(client, user));
    pushes
}

#[tokio::test]
async fn paper_trading_places_fills_partially_and_cancels_with_private_pushes() {
    // One tick an hour: the market maker's book stays as it was quoted at start.
    let server = Server::start_default(&[
        ("RPC_CRYPTO_TOKEN__HMAC_SECRET", SECRET),
        ("RPC_CRYPTO_SIM__TICK", "1h"),
    ]);
    let mut alice = client(&server, "alice").await;
    let mut bob = client(&server, "bob").await;
    for (client, user) in [(&mut alice, "alice"), (&mut bob, "bob")] {
        let login = call(
            client,
            2,
            "login",
            json!({"exchange": "sim", "account": "main"}),
        )
        .await;
        assert_eq!(login.unwrap()["user"], user);
        for (i, kind) in ["orders", "balance", "mytrades"].iter().enumerate() {
            let reply = client
                .call(subscribe(3 + i as u32, &format!("{kind}:sim#{user}")))
                .await;
            assert!(reply.subscribe.is_some(), "{reply:?}");
        }
    }
    // Nobody gets into another user's channels.
    let reply: Reply = bob.call(subscribe(9, "orders:sim#alice")).await;
    assert_eq!(error_code(&reply), 103);

    let ticker = call(
        &mut alice,
        10,
        "fetch_ticker",
        json!({"exchange": "sim", "symbol": "BTC/USDT"}),
    )
    .await
    .unwrap();
    let (bid, ask) = (
        ticker["bid"].as_f64().unwrap(),
        ticker["ask"].as_f64().unwrap(),
    );
    // Inside the spread: alice's order becomes the best ask, and only she can fill bob.
    let price = ((bid + ask) / 2.0 * 100.0).round() / 100.0;
    assert!(bid < price && price < ask, "{bid} < {price} < {ask}");

    let before = call(&mut alice, 11, "fetch_balance", json!({"exchange": "sim"}))
        .await
        .unwrap();
    assert_eq!(before["BTC"]["free"], 0.5);
    let placed = call(
        &mut alice,
        12,
        "create_order",
        json!({"exchange": "sim", "symbol": "BTC/USDT", "type": "limit", "side": "sell",
               "amount": 0.01, "price": price}),
    )
    .await
    .unwrap();
    assert_eq!(keys(&placed), set(fields::ORDER_FIELDS));
    assert_eq!(
        (placed["status"].as_str(), placed["filled"].as_f64()),
        (Some("open"), Some(0.0))
    );
    let id = placed["id"].as_str().unwrap().to_owned();

    let taken = call(
        &mut bob,
        10,
        "create_order",
        json!({"exchange": "sim", "symbol": "BTC/USDT", "type": "limit", "side": "buy",
               "amount": 0.004, "price": price, "params": {"timeInForce": "IOC"}}),
    )
    .await
    .unwrap();
    assert_eq!(taken["status"], "closed");
    assert_eq!(taken["filled"], 0.004);
    assert_eq!(taken["average"], price);

    let canceled = call(
        &mut alice,
        13,
        "cancel_order",
        json!({"exchange": "sim", "id": id}),
    )
    .await
    .unwrap();
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(
        (canceled["filled"].as_f64(), canceled["remaining"].as_f64()),
        (Some(0.004), Some(0.006))
    );

    // Alice's pushes: her order placed, partly filled, canceled; her fill; her balances.
    let pushes = wait_pushes(&mut alice, 7, "alice").await;
    let of = |kind: &str| -> Vec<Value> {
        pushes
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let orders = of("orders");
    let states: Vec<(&str, f64)> = orders
        .iter()
        .map(|o| (o["status"].as_str().unwrap(), o["filled"].as_f64().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("open", 0.0), ("open", 0.004), ("canceled", 0.004)],
        "{orders:?}"
    );
    assert!(orders.iter().all(|o| o["id"] == id.as_str()));
    let fills = of("mytrades");
    assert_eq!(fills.len(), 1, "{fills:?}");
    assert_eq!(keys(&fills[0]), set(fields::TRADE_FIELDS));
    assert_eq!(fills[0]["takerOrMaker"], "maker");
    assert_eq!(fills[0]["amount"], 0.004);
    assert_eq!(fills[0]["fee"]["currency"], "USDT");
    assert_eq!(fills[0]["fee"]["rate"], 0.001);
    assert!(!of("balance").is_empty());

    // Bob's: only his own (checked in wait_pushes), his taker fill with its fee in BTC.
    let pushes = wait_pushes(&mut bob, 3, "bob").await;
    let fill = pushes
        .iter()
        .find(|(k, _)| k == "mytrades")
        .expect("bob's fill")
        .1
        .clone();
    assert_eq!(
        (
            fill["takerOrMaker"].as_str(),
            fill["fee"]["currency"].as_str()
        ),
        (Some("taker"), Some("BTC"))
    );

    // Balances moved by exactly the fill and the fees.
    let after = call(&mut alice, 14, "fetch_balance", json!({"exchange": "sim"}))
        .await
        .unwrap();
    assert_eq!(after["BTC"]["total"], 0.496);
    assert_eq!(after["BTC"]["used"], 0.0);
    let proceeds = 0.004 * price * (1.0 - 0.001);
    let usdt = after["USDT"]["total"].as_f64().unwrap();
    assert!(
        (usdt - (10_000.0 + proceeds)).abs() < 0.01,
        "{usdt} vs {}",
        10_000.0 + proceeds
    );
    let bob_balance = call(&mut bob, 11, "fetch_balance", json!({"exchange": "sim"}))
        .await
        .unwrap();
    assert_eq!(bob_balance["BTC"]["total"], 0.5 + 0.004 * (1.0 - 0.002));
    let trades = call(
        &mut alice,
        15,
        "fetch_my_trades",
        json!({"exchange": "sim", "symbol": "BTC/USDT"}),
    )
    .await
    .unwrap();
    assert_eq!(trades.as_array().unwrap().len(), 1);
    let open = call(
        &mut alice,
        16,
        "fetch_open_orders",
        json!({"exchange": "sim"}),
    )
    .await
    .unwrap();
    assert_eq!(open, json!([]));
    server.assert_no_panic();
}

#[tokio::test]
async fn bad_orders_get_their_ccxt_errors_and_change_no_balance() {
    let server = Server::start_default(&[("RPC_CRYPTO_TOKEN__HMAC_SECRET", SECRET)]);
    let mut alice = client(&server, "alice").await;
    let mut bob = client(&server, "bob").await;
    let sim = |extra: Value| {
        let mut data = json!({"exchange": "sim"});
        data.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        data
    };

    // Before login: AuthenticationError (1201).
    let early = call(&mut alice, 2, "fetch_balance", sim(json!({}))).await;
    assert_eq!(early.unwrap_err().0, 1201);
    // Anonymous clients cannot log in.
    let mut anonymous = client(&server, "").await;
    let login = call(&mut anonymous, 2, "login", sim(json!({"account": "x"}))).await;
    assert_eq!(login.unwrap_err().0, 1201);

    call(&mut alice, 3, "login", sim(json!({"account": "main"})))
        .await
        .unwrap();
    call(&mut bob, 3, "login", sim(json!({"account": "main"})))
        .await
        .unwrap();
    // The same login again is fine; another account is refused.
    call(&mut alice, 4, "login", sim(json!({"account": "main"})))
        .await
        .unwrap();
    let other = call(&mut alice, 5, "login", sim(json!({"account": "other"}))).await;
    assert_eq!(other.unwrap_err().0, 1201);

    let before = call(&mut alice, 6, "fetch_balance", sim(json!({})))
        .await
        .unwrap();
    let order = |amount: Value, price: Value| {
        sim(
            json!({"symbol": "BTC/USDT", "type": "limit", "side": "buy", "amount": amount, "price": price}),
        )
    };
    let cases = [
        (
            "unknown exchange",
            json!({"exchange": "nope", "symbol": "BTC/USDT"}),
            "fetch_ticker",
            1206,
        ),
        (
            "unknown symbol",
            sim(json!({"symbol": "DOGE/USDT"})),
            "fetch_ticker",
            1206,
        ),
        (
            "zero amount",
            order(json!(0), json!(1000)),
            "create_order",
            1204,
        ),
        (
            "negative amount",
            order(json!(-1), json!(1000)),
            "create_order",
            1204,
        ),
        (
            "NaN amount",
            order(json!("NaN"), json!(1000)),
            "create_order",
            1204,
        ),
        (
            "absurd amount",
            order(json!(1e30), json!(1000)),
            "create_order",
            1204,
        ),
        (
            "negative price",
            order(json!(0.01), json!(-5)),
            "create_order",
            1204,
        ),
        (
            "absurd price",
            order(json!(0.01), json!("1e40")),
            "create_order",
            1204,
        ),
        (
            "price off precision",
            order(json!(0.01), json!(1000.123)),
            "create_order",
            1204,
        ),
        (
            "amount off precision",
            order(json!(0.0000001), json!(1000)),
            "create_order",
            1204,
        ),
        (
            "insufficient funds",
            order(json!(1), json!(50000)),
            "create_order",
            1203,
        ),
        (
            "unknown order",
            sim(json!({"id": "999999"})),
            "cancel_order",
            1205,
        ),
        (
            "unknown order id text",
            sim(json!({"id": "abc"})),
            "fetch_order",
            1205,
        ),
    ];
    for (i, (what, data, method, code)) in cases.into_iter().enumerate() {
        let answer = call(&mut alice, 10 + i as u32, method, data).await;
        let (got, message) = answer.expect_err(what);
        assert_eq!(got, code, "{what}: {message}");
    }
    // Cancelling someone else's order: the same OrderNotFound as an unknown one.
    let bobs = call(
        &mut bob,
        4,
        "create_order",
        order(json!(0.001), json!(1000)),
    )
    .await
    .unwrap();
    let id = bobs["id"].clone();
    let theirs = call(&mut alice, 40, "cancel_order", sim(json!({"id": id}))).await;
    assert_eq!(theirs.unwrap_err().0, 1205);
    let still = call(&mut bob, 5, "fetch_order", sim(json!({"id": bobs["id"]})))
        .await
        .unwrap();
    assert_eq!(still["status"], "open");

    let after = call(&mut alice, 41, "fetch_balance", sim(json!({})))
        .await
        .unwrap();
    for currency in ["BTC", "ETH", "USDT"] {
        assert_eq!(before[currency], after[currency], "{currency} unchanged");
    }
    server.assert_no_panic();
}

#[tokio::test]
async fn market_data_methods_answer_in_ccxt_form() {
    let server = Server::start_default(&[]);
    let mut client = client(&server, "").await;
    let list = client.call(rpc(2, "exchange.list", "{}")).await;
    assert_eq!(rpc_data(&list), json!(["sim"]));
    let markets = call(&mut client, 3, "load_markets", json!({"exchange": "sim"}))
        .await
        .unwrap();
    let symbols: HashSet<&str> = keys(&markets);
    assert_eq!(symbols, set(&["BTC/USDT", "ETH/USDT", "ETH/BTC"]));
    let btc = &markets["BTC/USDT"];
    assert_eq!(
        (
            btc["base"].as_str(),
            btc["quote"].as_str(),
            btc["type"].as_str()
        ),
        (Some("BTC"), Some("USDT"), Some("spot"))
    );
    assert_eq!(btc["precision"]["price"], 0.01);
    let tickers = call(&mut client, 4, "fetch_tickers", json!({"exchange": "sim"}))
        .await
        .unwrap();
    assert_eq!(keys(&tickers).len(), 3);
    let book = call(
        &mut client,
        5,
        "fetch_order_book",
        json!({"exchange": "sim", "symbol": "ETH/BTC", "limit": 5}),
    )
    .await
    .unwrap();
    assert_eq!(book["bids"].as_array().unwrap().len(), 5);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let trades = call(
        &mut client,
        6,
        "fetch_trades",
        json!({"exchange": "sim", "symbol": "ETH/USDT", "limit": 2}),
    )
    .await
    .unwrap();
    assert_eq!(trades.as_array().unwrap().len(), 2);
    let candles = call(
        &mut client,
        7,
        "fetch_ohlcv",
        json!({"exchange": "sim", "symbol": "ETH/USDT", "timeframe": "5m"}),
    )
    .await
    .unwrap();
    assert!(candles
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c.as_array().unwrap().len() == 6));
    let unsupported = call(
        &mut client,
        8,
        "fetch_ohlcv",
        json!({"exchange": "sim", "symbol": "ETH/USDT", "timeframe": "3m"}),
    )
    .await;
    assert_eq!(unsupported.unwrap_err().0, 1208);
    server.assert_no_panic();
}

#[tokio::test]
async fn the_exchange_streams_a_channel_from_its_first_subscriber_until_the_linger_after_its_last()
{
    let server = Server::start_default(&[
        ("RPC_CRYPTO_UPSTREAM_LINGER", "1s"),
        ("RUST_LOG", "rpc_crypto_actors::adapters=debug"),
    ]);
    let started = "sim: publishing ticker:sim:ETH/USDT";
    let stopped = "sim: no longer publishing ticker:sim:ETH/USDT";
    let mut client = client(&server, "").await;
    assert!(!server.log().contains(started));
    client.call(subscribe(2, "ticker:sim:ETH/USDT")).await;
    let item = client.next_item().await;
    assert_eq!(publication(&item).0, "ticker:sim:ETH/USDT");
    assert!(server.log().contains(started), "{}", server.log());
    client.call(unsubscribe(3, "ticker:sim:ETH/USDT")).await;
    let left = Instant::now();
    // Within the linger it still streams; after it (and one Router sweep), it stops.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!server.log().contains(stopped));
    while !server.log().contains(stopped) {
        assert!(
            left.elapsed() < Duration::from_secs(4),
            "no stop: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(left.elapsed() >= Duration::from_secs(1));
    server.assert_no_panic();
}

#[tokio::test]
async fn fiat_rates_stream_on_their_channels_and_answer_rates_fetch() {
    // The simulated rates stay put for the test: one set of rates to compare with itself.
    let server = Server::start_default(&[("RPC_CRYPTO_RATES__SIMULATED_INTERVAL", "1h")]);
    let mut client = client(&server, "").await;
    for (i, channel) in ["rates:ecb:EUR/USD", "rates:ecb:USD/JPY"]
        .iter()
        .enumerate()
    {
        client.call(subscribe(2 + i as u32, channel)).await;
    }
    let mut rates = std::collections::HashMap::new();
    let subscribed = Instant::now();
    while rates.len() < 2 {
        let (channel, data) = publication(&client.next_item().await);
        rates.insert(channel, data);
    }
    assert!(subscribed.elapsed() < Duration::from_secs(1));
    let eur_usd = &rates["rates:ecb:EUR/USD"];
    assert_eq!(
        (eur_usd["symbol"].as_str(), eur_usd["cross"].as_bool()),
        (Some("EUR/USD"), Some(false))
    );
    assert!(eur_usd["rate"].as_f64().unwrap() > 0.0);
    assert_eq!(rates["rates:ecb:USD/JPY"]["cross"], true);

    // A cross rate through EUR is the ratio of the two EUR rates of the same set.
    let fetch = |id, symbol: &str| rpc(id, "rates.fetch", &json!({"symbol": symbol}).to_string());
    let cross = rpc_data(&client.call(fetch(10, "USD/JPY")).await);
    let usd = rpc_data(&client.call(fetch(11, "EUR/USD")).await);
    let jpy = rpc_data(&client.call(fetch(12, "EUR/JPY")).await);
    assert_eq!(usd["info"]["USD"], cross["info"]["USD"], "one set of rates");
    assert_eq!(jpy["info"]["JPY"], cross["info"]["JPY"], "one set of rates");
    let expected = jpy["rate"].as_f64().unwrap() / usd["rate"].as_f64().unwrap();
    assert!((cross["rate"].as_f64().unwrap() / expected - 1.0).abs() < 1e-12);
    let unknown = client.call(fetch(13, "EUR/XXX")).await;
    assert_eq!(error_code(&unknown), 1206);
    let malformed = client.call(rpc(14, "rates.fetch", "{}")).await;
    assert_eq!(error_code(&malformed), 107);
    server.assert_no_panic();
}

#[tokio::test]
async fn sys_stats_are_for_admins_with_a_grant() {
    let server = Server::start_default(&[("RPC_CRYPTO_TOKEN__HMAC_SECRET", SECRET)]);
    let mut anonymous = client(&server, "").await;
    assert_eq!(
        error_code(&anonymous.call(subscribe(2, "$sys:stats")).await),
        103
    );
    let mut user = client(&server, "alice").await;
    assert_eq!(
        error_code(&user.call(subscribe(2, "$sys:stats")).await),
        103
    );

    let grant = sign_hs256(
        SECRET.as_bytes(),
        &json!({"sub": "admin", "channel": "$sys:stats", "exp": unix_now() + 600}),
    );
    let mut admin = client(&server, "admin").await;
    let reply = admin
        .call(rpc_crypto_proto::protocol::Command {
            id: 2,
            subscribe: Some(rpc_crypto_proto::protocol::SubscribeRequest {
                channel: "$sys:stats".into(),
                token: grant,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    assert!(reply.subscribe.is_some(), "{reply:?}");
    let mut figures = Vec::new();
    while figures.len() < 2 {
        let (channel, data) = publication(&admin.next_item().await);
        assert_eq!(channel, "$sys:stats");
        figures.push(data);
    }
    let last = &figures[1];
    for field in [
        "sessions",
        "users",
        "channels",
        "subscriptions",
        "messages_in_per_second",
        "messages_out_per_second",
    ] {
        assert!(last[field].is_number(), "{field}: {last}");
    }
    assert_eq!(last["sessions"], 3);
    assert_eq!(last["users"], 2);
    // Adapter health: what each adapter last announced on `notifications`.
    assert_eq!(
        last["adapters"],
        json!({"sim": "up", "ecb": "up"}),
        "{last}"
    );
    server.assert_no_panic();
}

#[tokio::test]
async fn an_answer_too_large_for_the_queue_is_error_1005_not_a_disconnect() {
    let server = Server::start_default(&[
        ("RPC_CRYPTO_CLIENT__MAX_FRAME_SIZE", "1024"),
        ("RPC_CRYPTO_CLIENT__QUEUE_MAX_SIZE", "2048"),
    ]);
    let mut client = client(&server, "").await;
    let markets = call(&mut client, 2, "load_markets", json!({"exchange": "sim"})).await;
    let (code, message) = markets.unwrap_err();
    assert_eq!(code, 1005, "{message}");
    // The session goes on.
    let ticker = call(
        &mut client,
        3,
        "fetch_ticker",
        json!({"exchange": "sim", "symbol": "ETH/BTC"}),
    )
    .await;
    assert!(ticker.is_ok(), "{ticker:?}");
    server.assert_no_panic();
}
