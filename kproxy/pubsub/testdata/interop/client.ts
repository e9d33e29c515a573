// A client of kproxy's pubsub gateway written as the APISIX pubsub users write
// theirs: the classes protoc --ts_out generates from pubsub.proto, serialize()
// and deserialize().toObject(), a WebSocket of the npm ws package, and the
// seed client's fetch loop (list an offset, fetch from the last offset seen,
// keep the records after it).
//
// Usage: node out/client.js WS_URL TOPIC PARTITION COUNT
// Prints one JSON object per line: what each step got. Exits 1 on anything
// unexpected, with the reason on stderr.
import WebSocket from "ws";
import {
  CmdEmpty,
  CmdKafkaFetch,
  CmdKafkaListOffset,
  CmdPing,
  PubSubReq,
  PubSubResp,
} from "./gen/pubsub";

const [url, topic, partitionArg, countArg] = process.argv.slice(2);
const partition = Number(partitionArg);
const count = Number(countArg);

type Answer = ReturnType<typeof PubSubResp.prototype.toObject>;

const ws = new WebSocket(url);
ws.binaryType = "arraybuffer";
const waiting = new Map<number, (a: Answer) => void>();
let nextSeq = 100;

function fail(why: string): never {
  process.stderr.write(why + "\n");
  process.exit(1);
}

function out(obj: object) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// send writes one request and resolves with the answer of its sequence.
function send(req: PubSubReq): Promise<Answer> {
  return new Promise((resolve) => {
    waiting.set(req.sequence, resolve);
    ws.send(req.serialize());
  });
}

ws.on("message", (data: ArrayBuffer) => {
  const resp = PubSubResp.deserialize(new Uint8Array(data)).toObject();
  const resolve = waiting.get(resp.sequence ?? 0);
  if (resolve === undefined) {
    fail(`answer with unexpected sequence ${resp.sequence}: ${JSON.stringify(resp)}`);
  }
  waiting.delete(resp.sequence ?? 0);
  resolve(resp);
});
ws.on("error", (e) => fail(`websocket error: ${e}`));

function listOffset(timestamp: number): Promise<Answer> {
  return send(
    new PubSubReq({
      sequence: nextSeq++,
      cmd_kafka_list_offset: new CmdKafkaListOffset({ topic, partition, timestamp }),
    }),
  );
}

function fetch(offset: number): Promise<Answer> {
  return send(
    new PubSubReq({
      sequence: nextSeq++,
      cmd_kafka_fetch: new CmdKafkaFetch({ topic, partition, offset }),
    }),
  );
}

const b64 = (b?: Uint8Array) => Buffer.from(b ?? new Uint8Array()).toString("base64");

ws.on("open", async () => {
  // The seed's hello world: a ping and an empty command.
  const pong = await send(
    new PubSubReq({ sequence: nextSeq++, cmd_ping: new CmdPing({ state: new Uint8Array([72, 65, 100, 10, 90]) }) }),
  );
  if (pong.pong_resp === undefined) fail(`ping: ${JSON.stringify(pong)}`);
  out({ step: "pong", state: Array.from(pong.pong_resp.state ?? []) });
  const empty = await send(new PubSubReq({ sequence: nextSeq++, cmd_empty: new CmdEmpty() }));
  if (empty.error_resp === undefined) fail(`empty: ${JSON.stringify(empty)}`);
  out({ step: "empty", code: empty.error_resp.code, message: empty.error_resp.message });

  // Pipelined: both lookups are sent before either answer is read.
  const [start, end] = await Promise.all([listOffset(-2), listOffset(-1)]);
  if (start.kafka_list_offset_resp === undefined || end.kafka_list_offset_resp === undefined) {
    fail(`list offset: ${JSON.stringify([start, end])}`);
  }
  const startOffset = start.kafka_list_offset_resp.offset ?? 0;
  out({ step: "start", offset: startOffset });
  out({ step: "end", offset: end.kafka_list_offset_resp.offset ?? 0 });

  // The seed's loop: fetch from the last offset seen, keep what follows it.
  let offset = startOffset;
  let seen = -1;
  let got = 0;
  for (let round = 0; got < count; round++) {
    if (round > 10 * count + 10) fail(`got ${got} of ${count} records after ${round} fetches`);
    const resp = await fetch(offset);
    if (resp.kafka_fetch_resp === undefined) fail(`fetch at ${offset}: ${JSON.stringify(resp)}`);
    const msgs = resp.kafka_fetch_resp.messages ?? [];
    if (msgs.length > 0 && msgs[0].offset !== offset) {
      fail(`fetch at ${offset}: the first record is at ${msgs[0].offset}`);
    }
    for (const m of msgs) {
      if ((m.offset ?? 0) <= seen) continue;
      seen = m.offset ?? 0;
      got++;
      out({ step: "record", offset: m.offset, timestamp: m.timestamp, key: b64(m.key), value: b64(m.value) });
    }
    if (msgs.length > 0) offset = msgs[msgs.length - 1].offset ?? offset;
  }

  // Past the log end: an error naming the topic and partition.
  const oor = await fetch(seen + 1000);
  if (oor.error_resp === undefined) fail(`fetch past the end: ${JSON.stringify(oor)}`);
  out({ step: "out_of_range", code: oor.error_resp.code, message: oor.error_resp.message });

  out({ step: "done" });
  ws.close(1000);
});
