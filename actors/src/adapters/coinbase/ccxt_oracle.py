"""Writes ccxt_expected.json: what ccxt itself makes of the Coinbase fixtures.

The Rust tests (tests.rs) compare the adapter's output with this file, so ccxt is the oracle for
every unified value. Regenerate with the PyPI package `ccxt` (written with ccxt 4.5.90):

    python3 -m venv /tmp/ccxtvenv && /tmp/ccxtvenv/bin/pip install ccxt
    /tmp/ccxtvenv/bin/python actors/src/adapters/coinbase/ccxt_oracle.py

Markets come from ccxt.coinbaseexchange.fetch_markets fed with the recorded /products body;
tickers and trades from ccxt.pro.coinbaseexchange.parse_ticker / parse_ws_trade (the parsers its
watchTicker / watchTrades use) with those markets set; books from its handle_order_book (what
watchOrderBook runs) fed every level2 message, the top 10 levels of each at the end. `info` is left out (the tests check it is
the raw message), and so are keys the project's ccxt model does not carry.

Floats are written as strings of their shortest round-trip text (Python's repr): serde_json's
default float parser may miss the correctly rounded double by one unit in the last place, and
the tests compare bit for bit, reading these strings with Rust's exact `str::parse::<f64>`.
"""
import json
import os

import ccxt
import ccxt.pro

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, '..', '..', '..', '..', 'fixtures', 'exchanges')

MARKET_KEYS = ['id', 'symbol', 'base', 'quote', 'baseId', 'quoteId', 'active', 'type', 'spot',
               'margin', 'swap', 'future', 'option', 'contract', 'settle', 'settleId',
               'contractSize', 'linear', 'inverse', 'expiry', 'expiryDatetime', 'strike',
               'optionType', 'taker', 'maker', 'percentage', 'tierBased', 'feeSide',
               'precision', 'limits']
TICKER_KEYS = ['symbol', 'timestamp', 'datetime', 'high', 'low', 'bid', 'bidVolume', 'ask',
               'askVolume', 'vwap', 'open', 'close', 'last', 'previousClose', 'change',
               'percentage', 'average', 'baseVolume', 'quoteVolume']
TRADE_KEYS = ['id', 'timestamp', 'datetime', 'symbol', 'order', 'type', 'side', 'takerOrMaker',
              'price', 'amount', 'cost', 'fee', 'fees']
# The markets written out in full (the subscribed products, BTC-USD, and CGLD-USD whose base
# ccxt renames to CELO); all are counted.
MARKET_SAMPLE = ['BTC-USD', 'SKL-USD', 'SKL-BTC', 'BAND-GBP', 'NMR-EUR', 'BAND-BTC', 'YFI-BTC',
                 'DASH-BTC', 'NU-GBP', 'CRV-EUR', 'SKL-GBP', 'CGLD-USD']


def pick(value, keys):
    return {key: value.get(key) for key in keys}


def floats_as_text(value):
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {key: floats_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [floats_as_text(item) for item in value]
    return value


class Client:
    """Just what handle_order_book touches of a WebSocket client."""
    subscriptions = {}

    def resolve(self, *args):
        pass


BOOK_DEPTH = 10


def main():
    with open(os.path.join(FIXTURES, 'COINBASE.0')) as f:
        first_line = f.read().split('\n')[0]
    products = json.loads(first_line.split(': ', 1)[1])
    rest = ccxt.coinbaseexchange()
    rest.publicGetProducts = lambda params={}: products
    markets = rest.fetch_markets()
    ws = ccxt.pro.coinbaseexchange()
    ws.set_markets(markets)

    tickers, trades = [], []
    client = Client()
    with open(os.path.join(FIXTURES, 'COINBASE.ws.28.0')) as f:
        for line in f:
            if not line[:1].isdigit():
                continue
            message = json.loads(line.split(': ', 1)[1])
            kind = message.get('type')
            if kind == 'ticker':
                tickers.append(pick(ws.parse_ticker(message), TICKER_KEYS))
            elif kind in ('match', 'last_match'):
                trades.append(pick(ws.parse_ws_trade(message), TRADE_KEYS))
            elif kind in ('snapshot', 'l2update'):
                ws.handle_order_book(client, message)

    books = []
    for symbol in sorted(ws.orderbooks):
        book = ws.orderbooks[symbol]
        books.append({
            'symbol': symbol,
            'bids': [list(level) for level in book['bids'][:BOOK_DEPTH]],
            'asks': [list(level) for level in book['asks'][:BOOK_DEPTH]],
            'timestamp': book['timestamp'],
            'datetime': book['datetime'],
            'nonce': book['nonce'],
        })

    by_id = {m['id']: m for m in markets}
    out = {
        'ccxt_version': ccxt.__version__,
        'market_count': len(markets),
        'markets': [pick(by_id[i], MARKET_KEYS) for i in MARKET_SAMPLE],
        'tickers': tickers,
        'trades': trades,
        'books': books,
    }
    out = floats_as_text(out)
    with open(os.path.join(HERE, 'ccxt_expected.json'), 'w') as f:
        f.write('{\n')
        items = list(out.items())
        for n, (key, value) in enumerate(items):
            comma = ',' if n + 1 < len(items) else ''
            if isinstance(value, list):
                f.write(json.dumps(key) + ': [\n')
                f.write(',\n'.join(json.dumps(v, separators=(',', ':')) for v in value))
                f.write('\n]' + comma + '\n')
            else:
                f.write(json.dumps(key) + ': ' + json.dumps(value) + comma + '\n')
        f.write('}\n')


if __name__ == '__main__':
    main()
