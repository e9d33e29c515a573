// A devicehive ws-kafka-proxy client as its users write one: JSON messages
// over the npm ws package, replies matched by refid. It subscribes to a
// topic in a consumer group, creates notifications and waits for them to come
// back, asks for health, sends a batch, provokes error replies and
// unsubscribes, printing one JSON line per step for interop_test.go.
//
// usage: node client.js URL TOPIC GROUP
'use strict';

const WebSocket = require('ws');

const [url, topic, group] = process.argv.slice(2);
const ws = new WebSocket(url);
const waiting = new Map(); // refid -> resolve
const notifs = [];
let notifWaiter = null;

function print(step, fields) {
  console.log(JSON.stringify(Object.assign({ step }, fields)));
}

function fail(why) {
  print('error', { message: String(why) });
  process.exit(1);
}

ws.on('error', fail);
ws.on('message', (data) => {
  const msg = JSON.parse(data.toString());
  if (Array.isArray(msg)) {
    for (const n of msg) notifs.push(n);
    if (notifWaiter) notifWaiter();
    return;
  }
  const key = JSON.stringify(msg.refid);
  const resolve = waiting.get(key);
  if (!resolve) fail('a reply nobody asked for: ' + data);
  waiting.delete(key);
  resolve(msg);
});

// request sends a frame and resolves with the replies to the ids given.
function request(frame, ...ids) {
  const replies = ids.map((id) => new Promise((resolve) => waiting.set(JSON.stringify(id), resolve)));
  ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  return Promise.all(replies);
}

// notification waits until a notification with value p has arrived.
function notification(p) {
  return new Promise((resolve) => {
    const check = () => {
      const n = notifs.find((x) => x.p === p);
      if (n) {
        notifWaiter = null;
        resolve(n);
      }
    };
    notifWaiter = check;
    check();
  });
}

setTimeout(() => fail('timed out'), 60000).unref();

ws.on('open', async () => {
  let [r] = await request({ id: 1, t: 'topic', a: 'subscribe', p: { t: [topic], consumer_group: group } }, 1);
  print('subscribe', { s: r.s, id: r.id, refid: r.refid, p: r.p });

  [r] = await request({ id: 'n1', t: 'notif', a: 'create', p: { t: topic, m: 'hello from node' } }, 'n1');
  print('notif_create', { s: r.s, id: r.id, refid: r.refid, p: r.p });
  let n = await notification('hello from node');
  print('notif', n);

  [r] = await request({ id: 'n2', t: 'notif', a: 'create', p: { t: topic, m: { custom_message: 'msg' } } }, 'n2');
  print('notif_create', { s: r.s, id: r.id, refid: r.refid, p: r.p });
  n = await notification('{"custom_message":"msg"}');
  print('notif', n);

  [r] = await request({ id: 3, t: 'health' }, 3);
  print('health', { s: r.s, p: r.p });

  const batch = await request([{ id: 4, t: 'topic', a: 'list' }, { id: 5, t: 'health' }], 4, 5);
  print('batch', { ids: batch.map((x) => x.refid), s: batch.map((x) => x.s) });

  [r] = await request('{"id":6,"t":', null);
  print('bad_json', { s: r.s, code: r.code, p: r.p });
  [r] = await request({ id: 7, t: 'device', a: 'create' }, 7);
  print('unknown_type', { s: r.s, code: r.code, p: r.p, refid: r.refid });
  [r] = await request({ id: 8, t: 'notif', a: 'create', p: { t: '__consumer_offsets', m: 'x' } }, 8);
  print('denied', { s: r.s, code: r.code, p: r.p, refid: r.refid });

  [r] = await request({ id: 9, t: 'topic', a: 'unsubscribe' }, 9);
  print('unsubscribe', { s: r.s, p: r.p });
  print('done', {});
  ws.close(1000);
});
