// Connection tokens with the official npm `centrifuge` SDK, in JSON and in Protobuf: a client
// whose token lives 3 seconds keeps one session and its subscription for 8 seconds, the SDK
// refreshing the token through its `getToken` callback (the `refresh` command) each time the
// connect or refresh result's ttl runs out; and a client whose first token has already expired
// gets error 109 on connect, calls getToken and connects.
// Run by tests/sdk.rs, which starts the server with RPC_CRYPTO_TOKEN__HMAC_SECRET = SECRET and
// RPC_CRYPTO_CLIENT__EXPIRED_CLOSE_DELAY = 1s (a missed refresh would end the session with 3005)
// and passes its URL in RPC_CRYPTO_URL.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');

const url = process.env.RPC_CRYPTO_URL;
assert.ok(url, 'RPC_CRYPTO_URL is set');

const { formats, once, waitFor, withTimeout } = require('./helpers');

// The server's HS256 secret: tests/sdk.rs starts the server with the same one.
const SECRET = 'sdk-token-test-secret-of-at-least-32-bytes';
// How long each token lives, in seconds.
const TOKEN_TTL = 3;
// How long the refreshing client is watched, and how often a message is published meanwhile.
const WATCH_MS = 8000;
const PUBLISH_EVERY_MS = 300;

const base64url = (value) => Buffer.from(value).toString('base64url');

// An HS256 JWT of `claims`, signed with SECRET.
function sign(claims) {
  const unsigned = `${base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${base64url(JSON.stringify(claims))}`;
  const signature = crypto.createHmac('sha256', SECRET).update(unsigned).digest('base64url');
  return `${unsigned}.${signature}`;
}

const unixNow = () => Math.floor(Date.now() / 1000);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A `ws` WebSocket that records every frame both ways in `frames`, with the time since `start`,
// so that a failure can show what the SDK sent and what it got.
function recordingWebSocket(frames, start) {
  const show = (data) =>
    typeof data === 'string'
      ? data
      : Buffer.isBuffer(data) || data instanceof Uint8Array || data instanceof ArrayBuffer
        ? `<${Buffer.from(data).length} bytes> ${Buffer.from(data).toString('hex')}`
        : String(data);
  return class RecordingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      this.on('message', (data, isBinary) =>
        frames.push(`${Date.now() - start}ms <- ${isBinary ? show(data) : data.toString()}`),
      );
      this.on('close', (code, reason) =>
        frames.push(`${Date.now() - start}ms closed ${code} ${reason.toString()}`),
      );
    }

    send(data, ...rest) {
      frames.push(`${Date.now() - start}ms -> ${show(data)}`);
      return super.send(data, ...rest);
    }
  };
}

// Runs `body(frames)`; on failure, adds the recorded frames to the error.
async function withFrames(body) {
  const frames = [];
  try {
    await body(frames);
  } catch (error) {
    error.message += `\n--- frames of the client under test ---\n${frames.join('\n')}`;
    throw error;
  }
}

for (const [name, format] of Object.entries(formats)) {
  test(`SDK token refresh over ${name}`, { timeout: 60000 }, (t) =>
    withFrames(async (frames) => {
      const { Centrifuge, encode, decode } = format;
      const start = Date.now();
      const issued = [];
      const newToken = () => {
        const exp = unixNow() + TOKEN_TTL;
        issued.push(exp);
        return sign({ sub: 'alice', exp });
      };
      let getTokenCalls = 0;
      const reader = new Centrifuge(url, {
        websocket: recordingWebSocket(frames, start),
        token: newToken(),
        getToken: async () => {
          getTokenCalls++;
          return newToken();
        },
      });
      // The writer's token outlives the test: only the reader refreshes.
      const writer = new Centrifuge(url, {
        websocket: WebSocket,
        token: sign({ sub: 'bob', exp: unixNow() + 600 }),
      });

      // Everything the reader sees is only recorded here: an exception in an SDK event handler
      // would stop the client, so the assertions come after.
      const events = [];
      const connects = [];
      const errors = [];
      const subscribes = [];
      const publications = [];
      const record = (emitter, what, event) =>
        emitter.on(event, (ctx) => events.push({ what, event, at: Date.now() - start, ctx }));
      for (const event of ['connecting', 'connected', 'disconnected']) {
        record(reader, 'client', event);
      }
      reader.on('error', (ctx) => errors.push(ctx));
      reader.on('connected', (ctx) => connects.push(ctx));
      writer.on('error', () => {});

      const channel = `chat:token-${name}`;
      const sub = reader.newSubscription(channel);
      for (const event of ['subscribing', 'subscribed', 'unsubscribed', 'error']) {
        record(sub, 'subscription', event);
      }
      sub.on('subscribed', (ctx) => subscribes.push(ctx));
      sub.on('publication', (ctx) => publications.push(decode(ctx.data)));

      try {
        reader.connect();
        await waitFor(() => connects.length === 1, 'the reader connected');
        const session = connects[0].client;
        sub.subscribe();
        await waitFor(() => subscribes.length === 1, 'the reader subscribed');
        // From here on, nothing but the events of a refresh may happen.
        const settled = events.length;

        writer.connect();
        await withTimeout(once(writer, 'connected'), 'the writer connected');
        const writerSub = writer.newSubscription(channel);
        writerSub.subscribe();
        await withTimeout(once(writerSub, 'subscribed'), 'the writer subscribed');

        // Over several token lifetimes, a message every PUBLISH_EVERY_MS, each acknowledged.
        const end = Date.now() + WATCH_MS;
        let sent = 0;
        while (Date.now() < end) {
          sent++;
          await withTimeout(writerSub.publish(encode({ seq: sent })), `publish ${sent}`);
          await sleep(PUBLISH_EVERY_MS);
        }
        // Not failing here: a lost session would show first in the events checked below.
        await waitFor(() => publications.length >= sent, `all ${sent} publications`).catch(() => {});

        const status = decode(
          (await withTimeout(reader.rpc('session.status', encode({})), 'session.status')).data,
        );
        // In JSON the refresh commands and replies can be read in the frames.
        const jsonFrames = (direction) =>
          frames
            .map((f) => f.split(` ${direction} `)[1])
            .filter((f) => f !== undefined && f.startsWith('{'))
            .flatMap((f) => f.split('\n').map((line) => JSON.parse(line)));
        const refreshCommands = jsonFrames('->').filter((c) => c.refresh);
        const refreshIds = new Set(refreshCommands.map((c) => c.id));
        const refreshReplies = jsonFrames('<-').filter((r) => refreshIds.has(r.id));

        const after = events.slice(settled).map(({ what, event, at, ctx }) => ({
          what,
          event,
          at,
          ctx: JSON.stringify(ctx),
        }));
        assert.deepEqual(after, [], 'no events after the first connected and subscribed');
        assert.deepEqual(errors, [], 'no client errors');
        assert.ok(getTokenCalls >= 2, `getToken was called ${getTokenCalls} times`);
        assert.equal(connects.length, 1, 'connected once');
        assert.equal(reader.state, 'connected');
        assert.equal(sub.state, 'subscribed');
        assert.equal(subscribes.length, 1, 'subscribed once');
        assert.equal(status.session_id, session, 'the same session');
        assert.equal(status.user, 'alice');
        // The session's end moved to the exp of the last token refreshed to (or of the one
        // before, if getToken was called just now and its refresh is still in flight).
        assert.ok(
          status.expires_at > issued[0] && issued.slice(-2).includes(status.expires_at),
          `expires_at ${status.expires_at}, tokens issued with exp ${issued}`,
        );
        assert.deepEqual(
          publications,
          Array.from({ length: sent }, (_, i) => ({ seq: i + 1 })),
          'every publication, in order, none missing',
        );
        if (name === 'json') {
          assert.ok(
            refreshCommands.length >= getTokenCalls - 1 && refreshCommands.length <= getTokenCalls,
            `one refresh command per new token: ${refreshCommands.length} for ${getTokenCalls}`,
          );
          assert.ok(refreshReplies.length >= refreshCommands.length - 1, 'the refreshes answered');
          for (const reply of refreshReplies) {
            assert.equal(reply.error, undefined, `a refresh failed: ${JSON.stringify(reply)}`);
            assert.equal(reply.refresh.client, session);
            assert.equal(reply.refresh.expires, true);
            assert.ok(reply.refresh.ttl > 0 && reply.refresh.ttl <= TOKEN_TTL, JSON.stringify(reply));
          }
        }
        const summary = `${name}: ${getTokenCalls} refreshes, ${publications.length}/${sent} messages, session kept`;
        t.diagnostic(summary);
      } finally {
        reader.disconnect();
        writer.disconnect();
      }
    }),
  );

  test(`SDK expired token over ${name}`, { timeout: 30000 }, (t) =>
    withFrames(async (frames) => {
      const { Centrifuge, encode, decode } = format;
      const start = Date.now();
      let getTokenCalls = 0;
      let issued;
      const client = new Centrifuge(url, {
        websocket: recordingWebSocket(frames, start),
        token: sign({ sub: 'alice', exp: unixNow() - 10 }),
        getToken: async () => {
          getTokenCalls++;
          issued = unixNow() + 60;
          return sign({ sub: 'alice', exp: issued });
        },
        minReconnectDelay: 100,
        maxReconnectDelay: 300,
      });
      const errors = [];
      const connects = [];
      let callsWhenConnected;
      client.on('error', (ctx) => errors.push(ctx));
      client.on('connected', (ctx) => {
        callsWhenConnected = getTokenCalls;
        connects.push(ctx);
      });
      try {
        client.connect();
        await waitFor(() => connects.length === 1, 'connected with the new token');
        assert.equal(callsWhenConnected, 1, 'getToken called once before connecting');
        assert.equal(errors.length, 1, `one error: ${JSON.stringify(errors)}`);
        assert.equal(errors[0].type, 'connect');
        assert.equal(errors[0].error.code, 109, 'the expired token got 109');
        const status = decode(
          (await withTimeout(client.rpc('session.status', encode({})), 'session.status')).data,
        );
        assert.equal(status.user, 'alice');
        assert.equal(status.session_id, connects[0].client);
        assert.equal(status.expires_at, issued);
        const summary = `${name}: expired token got 109, getToken called once, connected`;
        t.diagnostic(summary);
      } finally {
        client.disconnect();
      }
    }),
  );
}
