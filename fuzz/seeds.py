#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into corpus/<target>/, from real inputs: the exchange
captures in fixtures/exchanges/, the documented samples the repository's tests use, the ECB seed
file, and hand-made commands of both wire formats. The committed corpora are these seeds after a
run of at least five minutes each and `cargo fuzz cmin` (see README.md); run this again only to
start a corpus afresh (it adds files, it removes none).

Inputs whose first byte picks a mode (see each body's module doc) get that byte here.
"""

import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURES = os.path.join(ROOT, "fixtures", "exchanges")
# Between two upstream messages of an exchange target's input (support::SEPARATOR, ASCII RS).
SEP = "\x1e"


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return f.read()


def source(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def received(capture):
    """The received messages of a cryptofeed capture, in order."""
    out = []
    for line in capture.splitlines():
        if line[:1].isdigit() and ": " in line:
            out.append(line.split(": ", 1)[1])
    return out


def http_bodies(capture):
    """(url, body) of each HTTP record of a capture."""
    out = []
    for line in capture.splitlines():
        head, sep, body = line.partition(": ")
        if sep and " -> " in head:
            out.append((head.split(" ", 1)[0], body))
    return out


def small(message, keep=3):
    """A message with every long list of levels cut to `keep` entries (seeds stay small)."""
    def cut(value):
        if isinstance(value, list):
            return [cut(v) for v in value[:keep]] if len(value) > keep else [cut(v) for v in value]
        if isinstance(value, dict):
            return {k: cut(v) for k, v in value.items()}
        return value
    return json.dumps(cut(json.loads(message)), separators=(",", ":"))


def windows(messages, size, count):
    """`count` runs of `size` consecutive messages, spread over the capture."""
    if len(messages) <= size:
        return [messages]
    step = max(1, (len(messages) - size) // max(1, count - 1))
    return [messages[i:i + size] for i in range(0, len(messages) - size + 1, step)][:count]


def write(target, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.join(HERE, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def mode(byte, text):
    return bytes([byte]) + text.encode("utf-8")


# ---- Protobuf, by hand: enough of the wire format for Command.

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, value):
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode("utf-8")
    return varint(number << 3 | 2) + varint(len(value)) + value


def message(*fields):
    return b"".join(field(n, v) for n, v in fields)


def delimited(msg):
    return varint(len(msg)) + msg


def commands():
    """(JSON line, Protobuf message) of the same command, one per kind."""
    sub = lambda ch: message((1, ch))
    return [
        ('{"id":1,"connect":{"token":"t.k.n","name":"js","version":"1.0","data":{"a":1}}}',
         message((1, 1), (4, message((1, "t.k.n"), (2, '{"a":1}'), (4, "js"), (5, "1.0"))))),
        ('{"id":2,"subscribe":{"channel":"ticker:sim:BTC/USDT","recover":true,"offset":5,"epoch":"e"}}',
         message((1, 2), (5, message((1, "ticker:sim:BTC/USDT"), (3, 1), (6, "e"), (7, 5))))),
        ('{"id":3,"unsubscribe":{"channel":"news"}}', message((1, 3), (6, sub("news")))),
        ('{"id":4,"publish":{"channel":"sandbox:x","data":{"text":"héllo","n":[1,2.5,null]}}}',
         message((1, 4), (7, message((1, "sandbox:x"), (2, '{"text":"héllo","n":[1,2.5,null]}'))))),
        ('{"id":5,"presence":{"channel":"chat"}}', message((1, 5), (8, sub("chat")))),
        ('{"id":6,"presence_stats":{"channel":"chat"}}', message((1, 6), (9, sub("chat")))),
        ('{"id":7,"history":{"channel":"chat","limit":10,"since":{"offset":3,"epoch":"e"},"reverse":true}}',
         message((1, 7), (10, message((1, "chat"), (7, 10), (8, message((1, 3), (2, "e"))), (9, 1))))),
        ('{"id":8,"ping":{}}', message((1, 8), (11, b""))),
        ('{"send":{"data":"x"}}', message((12, message((1, '"x"'))))),
        ('{"id":9,"rpc":{"method":"exchange.balance","data":{"exchange":"sim"}}}',
         message((1, 9), (13, message((1, '{"exchange":"sim"}'), (2, "exchange.balance"))))),
        ('{"id":10,"refresh":{"token":"new"}}', message((1, 10), (14, message((1, "new"))))),
        ('{"id":11,"sub_refresh":{"channel":"c","token":"s"}}',
         message((1, 11), (15, message((1, "c"), (2, "s"))))),
        ("{}", b""),
    ]


def seed_commands():
    pairs = commands()
    for line, pb in pairs:
        write("commands_json", line)
        write("commands_protobuf", delimited(pb))
    # Batches, as SDKs send them (JSON lines; Protobuf messages back to back).
    write("commands_json", "\n".join(line for line, _ in pairs[:4]))
    write("commands_json", pairs[0][0] + "\n\n" + '{"id":' + "\n" + pairs[1][0] + "\n")
    write("commands_protobuf", b"".join(delimited(pb) for _, pb in pairs[:4]))
    write("commands_protobuf", delimited(pairs[1][1]) + b"\x0a\x08\x01")


def seed_json_text():
    values = [
        '{"price":"1.5"}', '[1,2,3]', '"é"', "12.5e-3", "true", "null", '{"a":\n1}',
        '{"nested":{"list":[{"x":[[]]}],"s":"\\u00e9\\n\\"q\\""}}', " [ 1 , 2 ] ",
        "[" * 64 + "]" * 64, "[" * 65 + "]" * 65, '"\\ud83d\\ude00"', "1e400", "{}",
    ]
    for v in values:
        write("json_text", v)
    write("json_text", b'"\xff\xfe"')
    write("json_text", b'{"a":"\xc3"}')


def seed_ecb():
    write("ecb_rates", source("actors/src/adapters/rates_seed.xml"))
    text = source("proto/src/rates.rs")
    fixture_xml = re.search(r'const FIXTURE: &str = r#"(.*?)"#;', text, re.S)
    if fixture_xml:
        write("ecb_rates", fixture_xml.group(1))
    write("ecb_rates",
          "<?xml version='1.0'?><gesmes:Envelope xmlns:gesmes='g'><Cube><Cube time='2024-02-29'>"
          "<Cube currency='USD' rate='1.0823'/><Cube currency='JPY' rate='162.20'/></Cube>"
          "<Cube time='2024-02-28'><Cube currency='USD' rate='1.0800'/></Cube></Cube>"
          "</gesmes:Envelope>")
    write("ecb_rates",
          "\ufeff<?xml version=\"1.0\"?>\n<!-- c --><e:Envelope xmlns:e=\"x\">\r\n<Cube>"
          "<Cube time=\"2017-03-08\"><![CDATA[x]]><?pi?><Cube currency=\"USD\" rate=\"1.0556\">"
          "</Cube></Cube></Cube></e:Envelope>")


def seed_binance():
    ws = received(fixture("BINANCE.ws.1.0"))
    for run in windows(ws, 6, 8):
        write("binance", mode(0, SEP.join(small(m) for m in run)))
    depth = [m for m in ws if "@depth" in m and '"NKNUSDT"' in m][:4]
    (_, snapshot), = [b for b in http_bodies(fixture("BINANCE.http.0.0")) if "NKNUSDT" in b[0]][:1]
    snap = json.loads(small(snapshot))
    first = json.loads(depth[0])["data"]
    snap["lastUpdateId"] = first["U"]
    write("binance", mode(0, SEP.join([small(depth[0]), json.dumps(snap)] + [small(m) for m in depth[1:]])))
    oracle = source("actors/src/adapters/binance/testdata/ccxt_oracle.py")
    answers = []
    for name in ["account", "order_full", "order_cancel", "open_orders", "partial"]:
        found = re.search(r"^%s = (.*)$" % name, oracle, re.M)
        if found:
            value = eval(found.group(1), {"True": True, "False": False, "None": None})
            answers.append(json.dumps(value, separators=(",", ":")))
    answers += [
        '{"code":-2010,"msg":"Account has insufficient balance for requested action."}',
        '{"code":-1121,"msg":"Invalid symbol."}',
        small(snapshot),
        '{"symbol":"NKNUSDT","priceChange":"-0.001","priceChangePercent":"-0.3","weightedAvgPrice":"0.35",'
        '"prevClosePrice":"0.352","lastPrice":"0.351","lastQty":"10","bidPrice":"0.3509","bidQty":"5",'
        '"askPrice":"0.3511","askQty":"7","openPrice":"0.352","highPrice":"0.36","lowPrice":"0.34",'
        '"volume":"1000","quoteVolume":"350","openTime":1633912112000,"closeTime":1633998512000,'
        '"firstId":1,"lastId":2,"count":2}',
    ]
    info = json.loads(http_bodies(fixture("BINANCE.0"))[0][1])
    info["symbols"] = info["symbols"][:2]
    info.pop("rateLimits", None)
    answers.append(json.dumps(info, separators=(",", ":")))
    for i, answer in enumerate(answers):
        write("binance", mode(2 * i + 1, answer))


def seed_coinbase():
    feed = received(fixture("COINBASE.ws.28.0"))
    for run in windows(feed, 6, 8):
        write("coinbase", mode(0, SEP.join(small(m) for m in run)))
    snapshots = [m for m in feed if '"type":"snapshot"' in m.replace(" ", "")]
    if snapshots:
        product = json.loads(snapshots[0])["product_id"]
        updates = [m for m in feed if '"l2update"' in m and product in m][:4]
        write("coinbase", mode(0, SEP.join([small(snapshots[0], 5)] + updates)))
    for kind in ["ticker", "match", "last_match", "heartbeat", "subscriptions", "error"]:
        found = [m for m in feed if '"type":"%s"' % kind in m.replace(" ", "")][:1]
        if found:
            write("coinbase", mode(0, small(found[0])))
    products = json.loads(http_bodies(fixture("COINBASE.0"))[0][1])[:3]
    write("coinbase", mode(1, json.dumps(products, separators=(",", ":"))))


def kraken_pairs(names):
    body = json.loads(http_bodies(fixture("KRAKEN.0"))[0][1])
    result = {k: v for k, v in body["result"].items() if v.get("wsname") in names}
    return json.dumps({"error": [], "result": result}, separators=(",", ":"))


def seed_kraken():
    feed = received(fixture("KRAKEN.ws.50.0"))
    for run in windows(feed, 6, 8):
        write("kraken_v1", mode(0, SEP.join(small(m, 10) for m in run)))
    events = [m for m in feed if m.startswith("{")][:3]
    write("kraken_v1", mode(0, SEP.join(events)))
    pairs = kraken_pairs({"XBT/CHF", "ETH/CHF"})
    books = [m for m in feed if '"XBT/CHF"' in m and m.startswith("[")][:4]
    write("kraken_v1", mode(1, SEP.join([pairs] + [small(m, 10) for m in books])))
    # Kraken's documented v1 ticker and trade samples, as the REST ticker and depth results.
    write("kraken_v1", mode(2, '{"a":["5525.40000","1","1.000"],"b":["5525.10000","1","1.000"],'
                                 '"c":["5525.10000","0.00398963"],"v":["2634.11501494","3591.17907851"],'
                                 '"p":["5631.44067","5653.78939"],"t":[11493,16267],"l":["5505.00000","5505.00000"],'
                                 '"h":["5783.00000","5783.00000"],"o":["5760.70000","5763.40000"]}'))
    write("kraken_v1", mode(2, '{"asks":[["5541.30000","2.50700000",1534614248]],'
                                 '"bids":[["5541.20000","1.52900000",1534614248],["5539.90000","0.30000000",1534614241]]}'))
    tests = source("actors/src/adapters/kraken/v2_tests.rs")
    samples = re.findall(r'^const [A-Z_]+V2: &str = r#"(.*?)"#;', tests, re.M)
    snapshot = fixture("kraken_v2_book_snapshot_checksum_3310070434.json").strip()
    for sample in samples + [snapshot]:
        write("kraken_v2", mode(0, sample))
    write("kraken_v2", mode(0, SEP.join(samples + [snapshot])))
    write("kraken_v2", mode(0, SEP.join([
        '{"channel":"heartbeat"}', '{"method":"pong","req_id":3}',
        '{"channel":"status","type":"update","data":[{"system":"online","version":"2.0.0"}]}',
        '{"method":"subscribe","success":true,"result":{"channel":"book","symbol":"BTC/USD","depth":10},"req_id":1}',
        '{"method":"subscribe","success":false,"error":"Currency pair not supported XBT/USD","symbol":"XBT/USD","req_id":2}'])))
    write("kraken_v2", mode(1, SEP.join([kraken_pairs({"XBT/USD", "XBT/CHF"}), snapshot] + samples[:2])))
    write("kraken_v2", mode(2, kraken_pairs({"XBT/USD", "ETH/XBT", "XDG/USD"})))


def seed_recording():
    binance = fixture("BINANCE.ws.1.0").splitlines()
    lines = [binance[0]]
    for line in binance[1:5]:
        at, text = line.split(": ", 1)
        lines.append(at + ": " + small(text))
    cut = "\n".join(lines) + "\n"
    write("recording", cut)
    depth = fixture("BINANCE.http.0.0").splitlines()[0]
    head, body = depth.split(": ", 1)
    write("recording", cut + "\0" + head + ": " + small(body) + "\n")
    write("recording",
          "# rpc-crypto recording v1 exchange=binance started=1633998512.000000\n"
          "wss://stream.binance.com:9443/stream?streams=nknusdt@depth <-> 1633998512.0\n"
          "wss://stream.binance.com:9443/stream?streams=nknusdt@depth <- 1633998512.1: {\"method\":\"SUBSCRIBE\",\"id\":1}\n"
          "1633998512.2: {\"result\":null,\"id\":1}\n"
          "https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000 -> 1633998512.3: {\"lastUpdateId\":1,\"bids\":[],\"asks\":[]}\n"
          "wss://stream.binance.com:9443/stream?streams=nknusdt@depth <-> 1633998513.0\n"
          "1633998513.5: {\"stream\":\"nknusdt@depth\",\"data\":{}}\n"
          "# rpc-crypto recording end records=6 dropped=0 ended=1633998514.000000\n")
    kraken = fixture("KRAKEN.ws.50.0").splitlines()[:6]
    write("recording", "\n".join(kraken) + "\n# comment\nconfiguration: {}\n1618678133.0: {\"event\":\"heartbeat\"}")


def seed_http():
    responses = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n<Cube/>",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 40\r\n\r\n{\"code\":-1121,\"msg\":\"Invalid symbol.\"}\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    ]
    for i, response in enumerate(responses):
        for settings in (0x07, 0x1e | (i & 1), 0xf3):
            write("http_response", bytes([settings]) + response)


def seed_secure():
    # The fuzzer finds the frame and handshake layouts itself; a few shapes to start from.
    for data in [b"\x00" + b"\x00" * 32, b"\x01" + b"\x00\x00\x00\x01" * 4, b"\x01\x00\x00\x00\x03abc\x00"]:
        write("frame_decoder", data)
    for data in [b"\x00\x00\x00\x00\x01", b"\x01\x00\x00\x00\x02", b"\x02" + b"\x00" * 256]:
        write("handshake_parser", data)


def main():
    seed_commands()
    seed_json_text()
    seed_ecb()
    seed_binance()
    seed_coinbase()
    seed_kraken()
    seed_recording()
    seed_http()
    seed_secure()
    for target in sorted(os.listdir(os.path.join(HERE, "corpus"))):
        print(target, len(os.listdir(os.path.join(HERE, "corpus", target))), file=sys.stderr)


if __name__ == "__main__":
    main()
