// The official npm `centrifuge` SDK against rpc-crypto, in JSON and in Protobuf.
// Run by tests/sdk.rs, which starts the server and passes its URL in RPC_CRYPTO_URL.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');

const url = process.env.RPC_CRYPTO_URL;
assert.ok(url, 'RPC_CRYPTO_URL is set');

const { formats, once, withTimeout } = require('./helpers');

for (const [name, format] of Object.entries(formats)) {
  test(`official SDK over ${name}`, async () => {
    const { Centrifuge, encode, decode } = format;
    const reader = new Centrifuge(url, { websocket: WebSocket });
    const writer = new Centrifuge(url, { websocket: WebSocket });
    try {
      const connected = once(reader, 'connected');
      reader.connect();
      const ctx = await withTimeout(connected, 'connected');
      assert.match(ctx.client, /^[0-9a-f]{32}$/, 'the session id is 128 bits of hex');
      assert.deepEqual(decode(ctx.data), { protocol_version: 1 });

      // Subscribe, and receive a publication sent by another client.
      const channel = `chat:sdk-${name}`;
      const sub = reader.newSubscription(channel);
      const subscribed = once(sub, 'subscribed');
      sub.subscribe();
      await withTimeout(subscribed, 'subscribed');

      writer.connect();
      await withTimeout(once(writer, 'connected'), 'writer connected');
      const publication = once(sub, 'publication');
      await withTimeout(writer.publish('open:unrelated', encode({ warm: 1 })), 'warm-up publish');
      // `chat` lets only subscribers publish: the writer subscribes first.
      const writerSub = writer.newSubscription(channel);
      writerSub.subscribe();
      await withTimeout(once(writerSub, 'subscribed'), 'writer subscribed');
      await withTimeout(writerSub.publish(encode({ price: '64000.5', from: 'writer' })), 'publish');
      const received = await withTimeout(publication, 'publication');
      assert.deepEqual(decode(received.data), { price: '64000.5', from: 'writer' });

      // The reader publishes too, and gets its own publication back.
      const own = once(sub, 'publication');
      await withTimeout(sub.publish(encode({ from: 'reader' })), 'reader publish');
      assert.deepEqual(decode((await withTimeout(own, 'own publication')).data), { from: 'reader' });

      // RPC: session.status counts both ways.
      const status = await withTimeout(reader.rpc('session.status', encode({})), 'rpc');
      const data = decode(status.data);
      assert.equal(data.session_id, ctx.client);
      assert.ok(data.last_received_id >= 4, JSON.stringify(data));
      assert.ok(data.last_sent_id >= 4, JSON.stringify(data));

      // A forbidden publish gets the documented error: 103 permission denied.
      await assert.rejects(
        withTimeout(reader.publish('ticker:sim:BTC/USDT', encode({ fake: true })), 'forbidden publish'),
        (error) => error.code === 103 && error.message === 'permission denied',
      );
      // An unknown method: 104.
      await assert.rejects(
        withTimeout(reader.rpc('no.such.method', encode({})), 'unknown rpc'),
        (error) => error.code === 104,
      );
    } finally {
      reader.disconnect();
      writer.disconnect();
    }
  });
}
