// Helpers shared by the SDK tests: the two SDK builds (JSON and Protobuf) and promise timing.
'use strict';

const formats = {
  json: {
    Centrifuge: require('centrifuge').Centrifuge,
    encode: (value) => value,
    decode: (data) => data,
  },
  // The Protobuf SDK carries data as bytes; rpc-crypto requires them to be JSON text.
  protobuf: {
    Centrifuge: require('centrifuge/build/protobuf').Centrifuge,
    encode: (value) => new TextEncoder().encode(JSON.stringify(value)),
    decode: (data) => JSON.parse(new TextDecoder().decode(data)),
  },
};

function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, resolve));
}

function withTimeout(promise, what, ms = 5000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Polls `condition` every 10 ms until it holds, or rejects at the deadline (and stops polling,
// so a failing test ends instead of keeping node alive).
function waitFor(condition, what, ms = 5000) {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (condition()) {
        resolve();
      } else if (Date.now() >= deadline) {
        reject(new Error(`timed out waiting for ${what}`));
      } else {
        setTimeout(check, 10);
      }
    };
    check();
  });
}

module.exports = { formats, once, waitFor, withTimeout };
