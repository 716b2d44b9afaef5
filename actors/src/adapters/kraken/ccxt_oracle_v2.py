"""What ccxt's kraken WebSocket v2 handlers yield for the v2 samples of v2_tests.rs (the
expected values there).

    python3 -m venv /tmp/ccxt && /tmp/ccxt/bin/pip install ccxt==4.5.90
    /tmp/ccxt/bin/python actors/src/adapters/kraken/ccxt_oracle_v2.py

ccxt 4.5's `ccxt.pro.kraken` speaks WebSocket v2: each message goes through its own
`handle_message` (→ `handle_ticker`, `handle_trades` → `parse_trade`, `handle_ohlcv`) with a
stand-in client that records what is resolved. The markets are ccxt's own `fetch_markets` of
KRAKEN.0.
"""
import json
import pathlib

import ccxt
import ccxt.pro

root = pathlib.Path(__file__).resolve().parents[4]
line = (root / "fixtures/exchanges/KRAKEN.0").read_text().split("\n")[0]
asset_pairs = json.loads(line.split(": ", 1)[1])

rest = ccxt.kraken()
rest.publicGetAssetPairs = lambda params={}: asset_pairs
kraken = ccxt.pro.kraken()
kraken.set_markets(rest.fetch_markets())


class Client:
    """What `handle_message` needs of a connection: it records what is resolved."""

    def __init__(self):
        self.subscriptions = {}
        self.url = "wss://ws.kraken.com/v2"
        self.resolved = []

    def resolve(self, result, message_hash):
        self.resolved.append((message_hash, result))

    def reject(self, error, message_hash):
        self.resolved.append((message_hash, "rejected: " + str(error)))


# The samples of v2_tests.rs, as written there.
SAMPLES = {
    "TICKER_V2": '{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/CHF","bid":5525.1,"bid_qty":1.00000000,"ask":5525.4,"ask_qty":1.00000000,"last":5525.1,"volume":3591.17907851,"vwap":5653.78939,"low":5505.0,"high":5783.0,"change":-238.3,"change_pct":-4.13}]}',
    "TRADES_V2": '{"channel":"trade","type":"update","data":[{"symbol":"BTC/CHF","side":"sell","price":5541.2,"qty":0.15850568,"ord_type":"limit","trade_id":4665846,"timestamp":"2018-08-18T17:40:57.321597Z"},{"symbol":"BTC/CHF","side":"buy","price":6060.0,"qty":0.02455,"ord_type":"market","trade_id":4665847,"timestamp":"2018-08-18T17:40:57.324998Z"}]}',
    "OHLC_V2": '{"channel":"ohlc","type":"update","timestamp":"2018-08-18T17:40:57.400000000Z","data":[{"symbol":"BTC/CHF","open":5541.2,"high":6060.0,"low":5541.2,"close":6060.0,"trades":2,"volume":0.18305568,"vwap":5612.6,"interval_begin":"2018-08-18T17:40:00.000000000Z","interval":1,"timestamp":"2018-08-18T17:41:00.000000Z"}]}',
}

for name, text in SAMPLES.items():
    client = Client()
    kraken.handle_message(client, json.loads(text))
    for message_hash, result in client.resolved:
        if not isinstance(result, dict):
            result = list(result)
        print(name, message_hash, json.dumps(result, default=str))
