// History and recovery with the official npm `centrifuge` SDK, in JSON and in Protobuf: a reader
// connected through a TCP proxy loses its connection, misses publications, reconnects by itself
// and gets them back in its subscribe reply (was_recovering, recovered).
// Run by tests/sdk.rs, which starts the server with a `recover` namespace (history_size,
// history_ttl, force_recovery) and passes its URL in RPC_CRYPTO_URL.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const WebSocket = require('ws');

const url = process.env.RPC_CRYPTO_URL;
assert.ok(url, 'RPC_CRYPTO_URL is set');

const { formats, once, waitFor, withTimeout } = require('./helpers');

// A TCP proxy in front of the server that can be taken down: down, it destroys every
// connection it has and every new one at once, as a network failure would.
class Proxy {
  constructor(serverUrl) {
    const target = new URL(serverUrl);
    this.serverUrl = serverUrl;
    this.host = target.hostname;
    this.port = Number(target.port || 80);
    this.down = false;
    this.sockets = new Set();
    this.accepted = 0;
    this.refused = 0;
    this.server = net.createServer((socket) => this._accept(socket));
  }

  async start() {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    const proxied = new URL(this.serverUrl);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(this.server.address().port);
    this.url = proxied.toString();
  }

  _accept(client) {
    if (this.down) {
      this.refused++;
      client.destroy();
      return;
    }
    this.accepted++;
    const upstream = net.connect(this.port, this.host);
    this.sockets.add(client);
    this.sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) {
      socket.on('error', end);
      socket.on('close', end);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  takeDown() {
    this.down = true;
    for (const socket of this.sockets) {
      socket.destroy();
    }
    this.sockets.clear();
  }

  bringUp() {
    this.down = false;
  }

  close() {
    this.takeDown();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

for (const [name, format] of Object.entries(formats)) {
  test(`SDK recovery over ${name}`, { timeout: 60000 }, async () => {
    const { Centrifuge, encode, decode } = format;
    const proxy = new Proxy(url);
    await proxy.start();
    const reader = new Centrifuge(proxy.url, {
      websocket: WebSocket,
      minReconnectDelay: 100,
      maxReconnectDelay: 300,
    });
    const writer = new Centrifuge(url, { websocket: WebSocket });

    // Everything the reader sees is only recorded here: an exception in an SDK event handler
    // would stop the client (it disconnects for good), so the assertions come after.
    // An 'error' listener is needed as well: a reconnect attempt refused by the proxy emits a
    // transport error, and an 'error' event nobody listens to throws inside the SDK.
    const connects = [];
    const readerErrors = [];
    const subscribes = [];
    const subErrors = [];
    const publications = [];
    reader.on('connected', (ctx) => connects.push(ctx));
    reader.on('error', (ctx) => readerErrors.push(ctx));
    writer.on('error', () => {});

    const channel = `recover:news-${name}`;
    const message = (n) => ({ seq: n, headline: `news ${n}` });
    const publish = (n) =>
      withTimeout(writer.publish(channel, encode(message(n))), `publish ${n} acknowledged`);
    // What the reader received, decoded: offsets as numbers (a Protobuf uint64 may come as a
    // Long-like object).
    const received = () =>
      publications.map((ctx) => ({
        offset: ctx.offset === undefined ? undefined : Number(ctx.offset),
        data: decode(ctx.data),
      }));
    const expected = (count) =>
      Array.from({ length: count }, (_, i) => ({ offset: i + 1, data: message(i + 1) }));

    try {
      const readerConnected = once(reader, 'connected');
      const writerConnected = once(writer, 'connected');
      reader.connect();
      writer.connect();
      await withTimeout(readerConnected, 'reader connected');
      await withTimeout(writerConnected, 'writer connected');

      const sub = reader.newSubscription(channel);
      sub.on('subscribed', (ctx) => subscribes.push(ctx));
      sub.on('publication', (ctx) => publications.push(ctx));
      sub.on('error', (ctx) => subErrors.push(ctx));
      sub.subscribe();
      await waitFor(() => subscribes.length === 1, 'subscribed');

      // The namespace forces recovery: the first subscribe is recoverable and has a position,
      // the top of a channel nothing was published in yet.
      const first = subscribes[0];
      assert.equal(first.channel, channel);
      assert.equal(first.recoverable, true, 'the subscribe result is recoverable');
      assert.equal(first.wasRecovering, false);
      assert.equal(first.recovered, false);
      assert.equal(first.hasRecoveredPublications, false);
      assert.ok(first.streamPosition, 'a recoverable subscription has a stream position');
      const epoch = first.streamPosition.epoch;
      assert.equal(typeof epoch, 'string');
      assert.notEqual(epoch, '', 'the subscribe result has an epoch');
      assert.equal(Number(first.streamPosition.offset), 0, 'an empty channel is at offset 0');

      // Three live publications, offsets 1, 2, 3.
      for (let n = 1; n <= 3; n++) {
        await publish(n);
      }
      await waitFor(() => publications.length >= 3, 'the first 3 publications');
      assert.deepEqual(received(), expected(3));

      // The connection breaks: the reader notices and starts reconnecting.
      const connecting = once(reader, 'connecting');
      const subscribing = once(sub, 'subscribing');
      proxy.takeDown();
      await withTimeout(connecting, 'the reader reconnecting');
      await withTimeout(subscribing, 'the subscription resubscribing');
      assert.equal(reader.state, 'connecting');
      assert.equal(sub.state, 'subscribing');

      // Five publications the reader misses, each acknowledged.
      for (let n = 4; n <= 8; n++) {
        await publish(n);
      }
      // At least one reconnect attempt fails while the proxy is down.
      await waitFor(() => proxy.refused >= 1, 'a reconnect attempt while the proxy is down');
      assert.equal(publications.length, 3, 'nothing arrives while the connection is down');

      // The proxy comes back: the SDK reconnects by itself and resubscribes, recovering.
      proxy.bringUp();
      await waitFor(() => subscribes.length >= 2, 'resubscribed after the reconnect', 10000);
      assert.equal(connects.length, 2, 'one connect, and one reconnect');
      const second = subscribes[1];
      assert.equal(second.channel, channel);
      assert.equal(second.wasRecovering, true, 'the resubscribe was recovering');
      assert.equal(second.recovered, true, 'the missed publications were recovered');
      assert.equal(second.recoverable, true);
      assert.equal(second.hasRecoveredPublications, true, 'the subscribe result has publications');
      assert.ok(second.streamPosition, 'a recoverable subscription has a stream position');
      assert.equal(second.streamPosition.epoch, epoch, 'the same epoch: the history is the same');
      // The result carries the stream's top, as Centrifuge's does.
      assert.equal(Number(second.streamPosition.offset), 8, 'the subscribe result is at the top');

      // Exactly the eight publications, in order, none twice.
      await waitFor(() => publications.length >= 8, 'the recovered publications');
      assert.deepEqual(received(), expected(8));

      // And live again: the next publication is offset 9.
      await publish(9);
      await waitFor(() => publications.length >= 9, 'the publication after the recovery');
      assert.deepEqual(received(), expected(9));

      assert.equal(subscribes.length, 2, 'subscribed once, and once again after the reconnect');
      assert.equal(connects.length, 2);
      assert.deepEqual(subErrors, [], 'no subscription errors');
      // The only errors are the refused reconnect attempts.
      assert.ok(
        readerErrors.every((e) => e.type === 'transport'),
        `reader errors: ${JSON.stringify(readerErrors)}`,
      );
      assert.ok(proxy.accepted >= 2, 'the reader connected through the proxy twice');
    } finally {
      reader.disconnect();
      writer.disconnect();
      await proxy.close();
    }
  });
}
