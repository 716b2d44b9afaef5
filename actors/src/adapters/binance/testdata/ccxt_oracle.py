"""Writes ccxt_oracle.json: what ccxt itself makes of the Binance captures and of Binance's
documented examples. The Rust tests (../tests.rs) compare the adapter's output with it.

Run from the workspace root with the PyPI package `ccxt` installed (4.5.90 was used):
    python actors/src/adapters/binance/testdata/ccxt_oracle.py

ccxt is the oracle for the unified structures (markets, tickers, trades, candles, order books,
balances, orders). The order book sync counts come from the independent implementation of
Binance's procedure below, and ccxt's own book code (`handle_order_book_message`) applies the
same events to give the expected book.
"""
import json
import os

import ccxt
import ccxt.pro as ccxtpro

HERE = os.path.dirname(os.path.abspath(__file__))
FX = os.path.join(HERE, '../../../../../fixtures/exchanges/')


def received(name):
    """(at, message) of every received line of a capture."""
    for line in open(FX + name):
        if line[:1].isdigit():
            at, message = line.split(': ', 1)
            yield float(at), message


def http(name):
    """(url, at, body) of every HTTP line of a capture."""
    for line in open(FX + name):
        if ' -> ' in line:
            url, rest = line.split(' -> ', 1)
            at, body = rest.split(': ', 1)
            yield url, float(at), body


exchange_info = json.loads(next(http('BINANCE.0'))[2])
ex = ccxtpro.binance()
# What ccxt would otherwise fetch with the credentials it does not have (see market-data.md).
ex.options['crossMarginPairsData'] = []
ex.options['isolatedMarginPairsData'] = []
markets = [ex.parse_market(s) for s in exchange_info['symbols']]
ex.set_markets(markets)


def without_info(value):
    value = dict(value)
    value.pop('info', None)
    return value


out = {'ccxt_version': ccxt.__version__}

# Markets.
nkn = without_info(ex.market('NKN/USDT'))
out['markets'] = {
    'count': len(markets),
    'active': sum(1 for m in markets if m['active']),
    'margin': sum(1 for m in markets if m['margin']),
    'NKNUSDT': nkn,
    'ETHBTC': without_info(ex.market('ETH/BTC')),
    'symbols': {m['id']: m['symbol'] for m in markets
                if m['id'] in ('NKNUSDT', 'BLZETH', 'LRCBTC', 'RUNEEUR', 'ETHBTC', 'BNBBTC',
                               'YOYOBTC', 'BCHSVUSDT', 'LTCBTC', 'BTCUSDT')
                or m['symbol'] != m['baseId'] + '/' + m['quoteId']},
}


def ws_ticker(data):
    return without_info(ex.parse_ws_ticker(data, 'spot'))


def ws_trade(data):
    market = ex.safe_market(data['s'], None, None, 'spot')
    return without_info(ex.parse_ws_trade(data, market))


def ws_kline(data):
    # pro.binance.handle_ohlcv, without the client and cache around it.
    k = data['k']
    return [ex.safe_integer(k, 't'), ex.safe_float(k, 'o'), ex.safe_float(k, 'h'),
            ex.safe_float(k, 'l'), ex.safe_float(k, 'c'), ex.safe_float(k, 'v')]


# Every non-depth message of the capture, in order.
stream = []
for at, message in received('BINANCE.ws.1.0'):
    m = json.loads(message)
    kind = m['stream'].split('@', 1)[1]
    if kind.startswith('depth'):
        continue
    parse = {'bookTicker': ws_ticker, 'aggTrade': ws_trade, 'kline_1m': ws_kline}[kind]
    stream.append({'stream': m['stream'], 'ccxt': parse(m['data'])})
out['stream'] = stream

# Binance's documented examples (spot WebSocket streams docs), and the 24hrTicker example in
# ccxt's own parseWsTicker comment.
documented = {
    'aggTrade': (ws_trade, {"e": "aggTrade", "E": 1672515782136, "s": "BNBBTC", "a": 12345, "p": "0.001", "q": "100", "f": 100, "l": 105, "T": 1672515782136, "m": True, "M": True}),
    'bookTicker': (ws_ticker, {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000", "a": "25.36520000", "A": "40.66000000"}),
    'kline': (ws_kline, {"e": "kline", "E": 1672515782136, "s": "BNBBTC", "k": {"t": 1672515780000, "T": 1672515839999, "s": "BNBBTC", "i": "1m", "f": 100, "L": 200, "o": "0.0010", "c": "0.0020", "h": "0.0025", "l": "0.0015", "v": "1000", "n": 100, "x": False, "q": "1.0000", "V": "500", "Q": "0.500", "B": "123456"}}),
    '24hrTicker': (ws_ticker, {"e": "24hrTicker", "E": 1672515782136, "s": "BNBBTC", "p": "0.0015", "P": "250.00", "w": "0.0018", "x": "0.0009", "c": "0.0025", "Q": "10", "b": "0.0024", "B": "10", "a": "0.0026", "A": "100", "o": "0.0010", "h": "0.0025", "l": "0.0010", "v": "10000", "q": "18", "O": 0, "C": 86400000, "F": 0, "L": 18150, "n": 18151}),
    '24hrTicker_ccxt': (ws_ticker, {"e": "24hrTicker", "E": 1579485598569, "s": "ETHBTC", "p": "-0.00004000", "P": "-0.209", "w": "0.01920495", "x": "0.01916500", "c": "0.01912500", "Q": "0.10400000", "b": "0.01912200", "B": "4.10400000", "a": "0.01912500", "A": "0.00100000", "o": "0.01916500", "h": "0.01956500", "l": "0.01887700", "v": "173518.11900000", "q": "3332.40703994", "O": 1579399197842, "C": 1579485597842, "F": 158251292, "L": 158414513, "n": 163222}),
}
out['documented'] = {name: {'raw': raw, 'ccxt': parse(dict(raw))} for name, (parse, raw) in documented.items()}

# Order books: Binance's procedure over the two captures merged by time.
timeline = []
for url, at, body in http('BINANCE.http.0.0'):
    symbol_id = url.split('symbol=')[1].split('&')[0]
    timeline.append((at, 'snapshot', symbol_id, json.loads(body)))
for at, message in received('BINANCE.ws.1.0'):
    m = json.loads(message)
    if '@depth' in m['stream']:
        timeline.append((at, 'update', m['data']['s'], m['data']))
timeline.sort(key=lambda entry: entry[0])

books = {}
state = {}
for at, what, symbol_id, data in timeline:
    s = state.setdefault(symbol_id, {'buffer': [], 'book': None, 'last': None, 'first': True,
                                     'applied': 0, 'dropped': 0, 'gaps': 0})
    if what == 'snapshot':
        symbol = ex.safe_symbol(symbol_id, None, None, 'spot')
        book = ex.order_book(ex.parse_order_book(data, symbol))
        book['nonce'] = data['lastUpdateId']
        s['book'], s['last'], s['first'] = book, data['lastUpdateId'], True
        pending, s['buffer'] = s['buffer'], []
    else:
        pending = [data]
    for event in pending:
        if s['book'] is None:
            s['buffer'].append(event)
        elif s['first'] and event['u'] <= s['last']:
            s['dropped'] += 1
        elif s['first'] and not (event['U'] <= s['last'] + 1 <= event['u']):
            s['gaps'] += 1
        elif not s['first'] and event['U'] != s['last'] + 1:
            s['gaps'] += 1
        else:
            ex.handle_order_book_message(None, event, s['book'])
            s['last'], s['first'] = event['u'], False
            s['applied'] += 1
for symbol_id, s in state.items():
    book = s['book']
    books[symbol_id] = {
        'applied': s['applied'], 'dropped': s['dropped'], 'gaps': s['gaps'],
        'symbol': book['symbol'], 'nonce': book['nonce'], 'timestamp': book['timestamp'],
        'bids': book['bids'][:20], 'asks': book['asks'][:20],
        'bid_levels': len(book['bids']), 'ask_levels': len(book['asks']),
    }
out['books'] = books

# Private REST: Binance's documented responses (spot REST API docs: account, new order with
# newOrderRespType FULL, cancel order, current open orders).
account = {"makerCommission": 15, "takerCommission": 15, "buyerCommission": 0, "sellerCommission": 0, "commissionRates": {"maker": "0.00150000", "taker": "0.00150000", "buyer": "0.00000000", "seller": "0.00000000"}, "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False, "requireSelfTradePrevention": False, "preventSor": False, "updateTime": 123456789, "accountType": "SPOT", "balances": [{"asset": "BTC", "free": "4723846.89208129", "locked": "0.00000000"}, {"asset": "LTC", "free": "4763368.68006011", "locked": "0.00000000"}], "permissions": ["SPOT"], "uid": 354937868}
order_full = {"symbol": "BTCUSDT", "orderId": 28, "orderListId": -1, "clientOrderId": "6gCrw2kRUAF9CvJDGP16IP", "transactTime": 1507725176595, "price": "0.00000000", "origQty": "10.00000000", "executedQty": "10.00000000", "origQuoteOrderQty": "0.000000", "cummulativeQuoteQty": "10.00000000", "status": "FILLED", "timeInForce": "GTC", "type": "MARKET", "side": "SELL", "workingTime": 1507725176595, "selfTradePreventionMode": "NONE", "fills": [{"price": "4000.00000000", "qty": "1.00000000", "commission": "4.00000000", "commissionAsset": "USDT", "tradeId": 56}, {"price": "3999.00000000", "qty": "5.00000000", "commission": "19.99500000", "commissionAsset": "USDT", "tradeId": 57}, {"price": "3998.00000000", "qty": "2.00000000", "commission": "7.99600000", "commissionAsset": "USDT", "tradeId": 58}, {"price": "3997.00000000", "qty": "1.00000000", "commission": "3.99700000", "commissionAsset": "USDT", "tradeId": 59}, {"price": "3995.00000000", "qty": "1.00000000", "commission": "3.99500000", "commissionAsset": "USDT", "tradeId": 60}]}
order_cancel = {"symbol": "LTCBTC", "origClientOrderId": "myOrder1", "orderId": 4, "orderListId": -1, "clientOrderId": "cancelMyOrder1", "transactTime": 1684804350068, "price": "2.00000000", "origQty": "1.00000000", "executedQty": "0.00000000", "cummulativeQuoteQty": "0.00000000", "status": "CANCELED", "timeInForce": "GTC", "type": "LIMIT", "side": "BUY", "selfTradePreventionMode": "NONE"}
open_orders = [{"symbol": "LTCBTC", "orderId": 1, "orderListId": -1, "clientOrderId": "myOrder1", "price": "0.1", "origQty": "1.0", "executedQty": "0.0", "cummulativeQuoteQty": "0.0", "status": "NEW", "timeInForce": "GTC", "type": "LIMIT", "side": "BUY", "stopPrice": "0.0", "icebergQty": "0.0", "time": 1499827319559, "updateTime": 1499827319559, "isWorking": True, "origQuoteOrderQty": "0.000000", "workingTime": 1499827319559, "selfTradePreventionMode": "NONE"}]
partial = {"symbol": "NKNUSDT", "orderId": 77, "orderListId": -1, "clientOrderId": "x-partial", "price": "0.35000000", "origQty": "100.00000000", "executedQty": "30.00000000", "cummulativeQuoteQty": "10.50000000", "status": "PARTIALLY_FILLED", "timeInForce": "GTC", "type": "LIMIT_MAKER", "side": "BUY", "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": 1633998512000, "updateTime": 1633998523963, "isWorking": True, "workingTime": 1633998512000, "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "NONE"}


def order(raw):
    parsed = without_info(ex.parse_order(json.loads(json.dumps(raw))))
    parsed['trades'] = [without_info(t) for t in parsed['trades']]
    return parsed


out['private'] = {
    'account': {'raw': account, 'ccxt': without_info(ex.parse_balance_custom(account, 'spot'))},
    'order_full': {'raw': order_full, 'ccxt': order(order_full)},
    'order_cancel': {'raw': order_cancel, 'ccxt': order(order_cancel)},
    'open_orders': {'raw': open_orders, 'ccxt': [order(o) for o in open_orders]},
    'order_partial': {'raw': partial, 'ccxt': order(partial)},
}

with open(os.path.join(HERE, 'ccxt_oracle.json'), 'w') as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write('\n')
