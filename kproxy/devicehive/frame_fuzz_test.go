package devicehive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
)

// FuzzFrame sends each input as one text frame over a live connection,
// followed by a health message as a fence, and checks the protocol's
// promises: the connection stays open; a frame that is not JSON gets exactly
// one error reply without an id; a JSON frame gets exactly one reply per
// message (one for an object, one per element of an array), in order, each
// with the message's id as id and refid (null when it has none), an error
// status for anything that is not a well-formed message; then comes the
// fence's reply.
func FuzzFrame(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"t":"health"}`,
		`{"id":"a","t":"topic","a":"list"}`,
		`{"id":2,"t":"topic","a":"create","p":["fuzz1"]}`,
		`{"id":3,"t":"notif","a":"create","p":{"t":"fuzz","m":"hello","part":0}}`,
		`{"id":4,"t":"notif","a":"create","p":{"t":"fuzz","m":{"x":[1,2]},"key":"k"}}`,
		`{"id":5,"t":"topic","a":"subscribe","p":{"t":["fuzz"],"consumer_group":"fz"}}`,
		`{"id":6,"t":"topic","a":"unsubscribe"}`,
		`[{"id":7,"t":"health"},{"id":8,"t":"nope"},9,{"t":"notif","a":"create","p":{"t":"__x","m":"m"}}]`,
		`[]`, `{}`, `null`, `"x"`, `{"id":1,"t":`, `{"id":{"a":1},"t":7}`, `{"id":"<&>","t":"health","id":2}`,
		"\xff\xfe", ``, `   [ {"id" : 1 , "t" : "health" } ]  `,
	} {
		f.Add([]byte(s))
	}
	g := startGateway(f, setup{opts: Options{AllowTopicCreate: true, MaxSubscriptions: 1, JoinTimeout: 20 * time.Second}})
	testcluster.CreateTopic(f, g.brokers, "fuzz", 1)
	c := dial(f, g.url, nil)
	fence := 0

	f.Fuzz(func(t *testing.T, frame []byte) {
		c.t = t
		if len(frame) > DefaultMaxFrameBytes {
			frame = frame[:DefaultMaxFrameBytes] // larger frames close the connection, by design
		}
		if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
			t.Fatalf("send frame: %v", err)
		}
		fence++
		fenceID := fmt.Sprintf("fence-%d", fence)
		c.send(map[string]any{"id": fenceID, "t": "health"})

		for i, id := range wantReplies(frame) {
			r := c.reply()
			if !sameJSON(r.ID, id) || !sameJSON(r.RefID, id) {
				t.Fatalf("reply %d: got id %s refid %s, want %s", i, r.ID, r.RefID, id)
			}
			if id == nil && r.S == 0 {
				t.Fatalf("reply %d: got s 0 for a frame or element that is no message: %+v", i, r)
			}
			if r.S != 0 && r.Code == "" {
				t.Fatalf("reply %d: error without a code: %+v", i, r)
			}
		}
		r := c.reply()
		if string(r.ID) != `"`+fenceID+`"` || r.S != 0 {
			t.Fatalf("got %+v, want the fence's reply (one reply per message)", r)
		}
	})
}

// wantReplies returns the id each reply to frame must carry, in order; nil
// stands for an error reply without an id (the frame or element is no
// message).
func wantReplies(frame []byte) []json.RawMessage {
	b := bytes.TrimLeft(frame, " \t\r\n")
	if !json.Valid(b) {
		return []json.RawMessage{nil}
	}
	if b[0] != '[' {
		return []json.RawMessage{idOf(b)}
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(b, &elems); err != nil {
		panic(err) // valid JSON starting with '[' is an array
	}
	ids := make([]json.RawMessage, len(elems))
	for i, e := range elems {
		ids[i] = idOf(e)
	}
	return ids
}

// idOf returns the id of a message, "null" for an object without one, nil for
// anything that is not an object.
func idOf(raw json.RawMessage) json.RawMessage {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil
	}
	if id, ok := fields["id"]; ok {
		return id
	}
	return json.RawMessage("null")
}

// sameJSON reports whether got is the JSON value want (nil: null).
func sameJSON(got, want json.RawMessage) bool {
	if want == nil {
		want = json.RawMessage("null")
	}
	decode := func(b []byte) (any, error) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		err := dec.Decode(&v)
		return v, err
	}
	g, err1 := decode(got)
	w, err2 := decode(want)
	return err1 == nil && err2 == nil && reflect.DeepEqual(g, w)
}
