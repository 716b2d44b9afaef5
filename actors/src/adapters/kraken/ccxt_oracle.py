"""What ccxt's kraken parser yields for the samples in tests.rs (the expected values there).

    python3 -m venv /tmp/ccxt && /tmp/ccxt/bin/pip install ccxt==4.5.90
    /tmp/ccxt/bin/python actors/src/adapters/kraken/ccxt_oracle.py

ccxt 4.5's `ccxt.pro.kraken` speaks WebSocket v2, so the v1 trade and ticker arrays go through
the REST parser, which reads the same shapes: `parse_trade` takes the array form, and
`parse_ticker` the ticker object, given `o` as the 24-hour open (o[1]; REST sends one string).
The market is looked up by id: `market("BTC/USD")` would find the dark-pool pair XXBTZUSD.d,
to which ccxt gives the same symbol.
"""
import json
import pathlib

import ccxt

root = pathlib.Path(__file__).resolve().parents[4]
line = (root / "fixtures/exchanges/KRAKEN.0").read_text().split("\n")[0]
asset_pairs = json.loads(line.split(": ", 1)[1])

kraken = ccxt.kraken()
kraken.publicGetAssetPairs = lambda params={}: asset_pairs
markets = kraken.fetch_markets()
kraken.set_markets(markets)
market = next(m for m in markets if m["id"] == "XXBTZUSD")
print("market", json.dumps({k: v for k, v in market.items() if k != "info"}))

trades = [
    ["5541.20000", "0.15850568", "1534614057.321597", "s", "l", ""],
    ["6060.00000", "0.02455000", "1534614057.324998", "b", "m", ""],
]
for raw in trades:
    print("trade", json.dumps(kraken.parse_trade(raw, market), default=str))

ticker = {
    "a": ["5525.40000", 1, "1.000"], "b": ["5525.10000", 1, "1.000"],
    "c": ["5525.10000", "0.00398963"], "h": ["5783.00000", "5783.00000"],
    "l": ["5505.00000", "5505.00000"], "o": ["5760.70000", "5763.40000"],
    "p": ["5631.44067", "5653.78939"], "t": [11493, 16267],
    "v": ["2634.11501494", "3591.17907851"],
}
ticker["o"] = ticker["o"][1]
parsed = kraken.parse_ticker(ticker, market)
parsed.pop("info")
print("ticker", json.dumps(parsed))
