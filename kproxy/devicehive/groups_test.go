package devicehive

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate/wsgatetest"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// values returns the values of ns, sorted.
func values(ns []notification) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.P
	}
	sort.Strings(out)
	return out
}

// TestGroupsSplitAndBroadcast: two sockets in one consumer group split a
// topic's records between them, each record to exactly one; a socket in
// another group gets every record. Kafka sees both groups and their members.
func TestGroupsSplitAndBroadcast(t *testing.T) {
	const parts, n = 4, 200
	g := startGateway(t, setup{})
	testcluster.CreateTopic(t, g.brokers, "events", parts)
	a, b, c := dial(t, g.url, nil), dial(t, g.url, nil), dial(t, g.url, nil)
	a.subscribe(1, "split", "events")
	b.subscribe(2, "split", "events")
	c.subscribe(3, "all", "events")

	ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
	defer cancel()
	groups, err := g.admin.DescribeGroups(ctx, "split", "all")
	if err != nil {
		t.Fatal(err)
	}
	if m := groups["split"].Members; len(m) != 2 {
		t.Fatalf("group split: got %d members, want 2 (%+v)", len(m), groups["split"])
	}
	for _, m := range groups["split"].Members {
		if as, _ := m.Assigned.AsConsumer(); as == nil || len(as.Topics) != 1 || len(as.Topics[0].Partitions) != parts/2 {
			t.Errorf("group split member %s: got assignment %+v, want %d partitions of events", m.MemberID, as, parts/2)
		}
	}
	if m := groups["all"].Members; len(m) != 1 {
		t.Fatalf("group all: got %d members, want 1", len(m))
	}

	want := g.produce(t, "events", parts, "v", n)
	slices.Sort(want)
	testwait.Eventually(t, replyTimeout, "the group split to get every record", func() bool {
		return len(a.received())+len(b.received()) >= n
	})
	// Nothing is delivered after an unsubscribe's reply: what a and b hold
	// then is everything they will get.
	a.ok(4, "topic", "unsubscribe", nil)
	b.ok(5, "topic", "unsubscribe", nil)
	got := values(append(a.received(), b.received()...))
	if !slices.Equal(got, want) {
		t.Errorf("group split: got %d notifications (%d distinct), want each of the %d records once", len(got), len(slices.Compact(slices.Clone(got))), n)
	}
	if len(a.received()) == 0 || len(b.received()) == 0 {
		t.Errorf("group split: a got %d, b got %d; want both a share", len(a.received()), len(b.received()))
	}
	if got := values(c.waitNotifs(n)); !slices.Equal(got, want) {
		t.Errorf("group all: got %d notifications, want every record once", len(got))
	}

	// Every notification says where its record is; ids count up per connection.
	recs := testcluster.ReadTopic(t, g.brokers, "events", n)
	where := map[string]*kgo.Record{}
	for _, r := range recs {
		where[string(r.Value)] = r
	}
	for i, nt := range c.received() {
		r := where[nt.P]
		if r == nil || nt.T != "notif" || nt.Topic != "events" || nt.Partition != r.Partition || nt.Offset != r.Offset ||
			nt.Key == nil || *nt.Key != string(r.Key) || nt.Timestamp != r.Timestamp.UnixMilli() || nt.ID != int64(i+1) {
			t.Fatalf("notification %d: got %+v, want id %d and the record's place %v", i, nt, i+1, r)
		}
	}
	if got := value(g.h.metrics.delivered); got != 2*n {
		t.Errorf("notifications_delivered_total: got %v, want %d", got, 2*n)
	}
}

// TestUnsubscribeStopsDelivery: after the unsubscribe reply nothing more
// arrives; the group kept the offsets of what was sent, so subscribing again
// delivers what was written meanwhile, and nothing twice.
func TestUnsubscribeStopsDelivery(t *testing.T) {
	g := startGateway(t, setup{})
	testcluster.CreateTopic(t, g.brokers, "t1", 2)
	a, witness := dial(t, g.url, nil), dial(t, g.url, nil)
	a.subscribe(1, "g", "t1")
	witness.subscribe(2, "witness", "t1")
	g.produce(t, "t1", 2, "before", 10)
	a.waitNotifs(10)
	if p := a.ok(3, "topic", "unsubscribe", nil); string(p) != `["t1"]` {
		t.Errorf("unsubscribe: got p %s, want [\"t1\"]", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
	defer cancel()
	groups, err := g.admin.DescribeGroups(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(groups["g"].Members); n != 0 {
		t.Errorf("group g after unsubscribe: got %d members, want 0", n)
	}
	committed, err := g.admin.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if got := committed.Offsets().Sorted(); len(got) != 2 || got[0].At+got[1].At != 10 {
		t.Errorf("group g committed %+v, want 10 records over both partitions", got)
	}

	g.produce(t, "t1", 2, "after", 10)
	witness.waitNotifs(20)
	a.fence()
	if got := len(a.received()); got != 10 {
		t.Errorf("after unsubscribe: got %d notifications in all, want the 10 from before", got)
	}
	if p := a.ok(4, "topic", "unsubscribe", nil); string(p) != `[]` {
		t.Errorf("second unsubscribe: got p %s, want []", p)
	}

	a.subscribe(5, "g", "t1")
	a.waitNotifs(20)
	a.fence()
	if got := values(a.received()[10:]); len(a.received()) != 20 || got[0] != "after0" || got[9] != "after9" {
		t.Errorf("resubscribed: got %v, want the 10 records written while away, once each", got)
	}
}

// TestInitialOffset: a new group starts at the log end by default (records
// written before the subscribe are not delivered) and at the log start with
// StartAtOldest.
func TestInitialOffset(t *testing.T) {
	for _, tt := range []struct {
		name   string
		oldest bool
		want   []string
	}{
		{"newest", false, []string{"new0", "new1"}},
		{"oldest", true, []string{"new0", "new1", "old0", "old1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := startGateway(t, setup{opts: Options{StartAtOldest: tt.oldest}})
			testcluster.CreateTopic(t, g.brokers, "t1", 1)
			g.produce(t, "t1", 1, "old", 2)
			c := dial(t, g.url, nil)
			c.subscribe(1, "g", "t1")
			// The group's start is committed at the join: a member joining
			// later starts there too, whatever was delivered.
			ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
			defer cancel()
			committed, err := g.admin.FetchOffsets(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			wantStart := int64(2)
			if tt.oldest {
				wantStart = 0
			}
			if o, ok := committed.Lookup("t1", 0); !ok || o.At != wantStart {
				t.Errorf("committed at the join: got %+v, want offset %d", o, wantStart)
			}
			g.produce(t, "t1", 1, "new", 2)
			c.waitNotifs(len(tt.want))
			c.fence()
			if got := values(c.received()); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSubscribeErrors checks each refused subscribe and the subscription
// limits.
func TestSubscribeErrors(t *testing.T) {
	g := startGateway(t, setup{opts: Options{MaxSubscriptions: 2}})
	testcluster.CreateTopic(t, g.brokers, "t1", 1)
	testcluster.CreateTopic(t, g.brokers, "t2", 1)
	c := dial(t, g.url, nil)
	c.fails(1, "topic", "subscribe", map[string]any{"t": []string{"t1"}}, 400, CodeNoConsumerGroup, "default_consumer_group")
	c.fails(2, "topic", "subscribe", map[string]any{"t": []string{"nosuch"}, "consumer_group": "g"}, 404, "unknown_topic", `"nosuch"`)
	c.fails(3, "topic", "subscribe", map[string]any{"t": []string{"__consumer_offsets"}, "consumer_group": "g"}, 403, "topic_not_allowed")
	c.fails(4, "topic", "subscribe", map[string]any{"t": []string{}, "consumer_group": "g"}, 400, CodeBadPayload)
	c.fails(5, "topic", "subscribe", map[string]any{"t": "t1", "consumer_group": "g"}, 400, CodeBadPayload)
	c.fails(6, "topic", "subscribe", map[string]any{"t": []string{"t1"}, "consumer_group": "g\n"}, 400, CodeBadPayload, "control characters")
	c.subscribe(7, "g1", "t1")
	c.subscribe(8, "g2", "t1")
	c.fails(9, "topic", "subscribe", map[string]any{"t": []string{"t1"}, "consumer_group": "g3"}, 429, CodeTooManySubscriptions, "max_subscriptions is 2")
	// The same group again adds the topics: the membership is renewed with both.
	if p := c.ok(10, "topic", "subscribe", map[string]any{"t": []string{"t2"}, "consumer_group": "g1"}); string(p) != `["t1","t2"]` {
		t.Errorf("subscribe again: got p %s, want both topics", p)
	}
	g.produce(t, "t2", 1, "x", 1)
	if got := c.waitNotifs(1); got[0].Topic != "t2" {
		t.Errorf("got %+v, want the record of t2", got[0])
	}
	if p := c.ok(11, "topic", "unsubscribe", map[string]any{"consumer_group": "g2"}); string(p) != `["t1"]` {
		t.Errorf("unsubscribe g2: got %s", p)
	}
	c.subscribe(12, "g3", "t1")
	if got := value(g.h.metrics.subscriptions); got != 2 {
		t.Errorf("subscriptions: got %v, want 2", got)
	}

	def := startGateway(t, setup{opts: Options{DefaultGroup: "fallback"}})
	testcluster.CreateTopic(t, def.brokers, "t1", 1)
	dial(t, def.url, nil).ok(1, "topic", "subscribe", map[string]any{"t": []string{"t1"}})
	ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
	defer cancel()
	groups, err := def.admin.DescribeGroups(ctx, "fallback")
	if err != nil || len(groups["fallback"].Members) != 1 {
		t.Errorf("default group: got %+v %v, want one member", groups, err)
	}
}

// TestBinaryValues: a record that is not UTF-8 arrives base64-encoded, marked
// enc "base64".
func TestBinaryValues(t *testing.T) {
	g := startGateway(t, setup{})
	testcluster.CreateTopic(t, g.brokers, "bin", 1)
	c := dial(t, g.url, nil)
	c.subscribe(1, "g", "bin")
	rec := &kgo.Record{Topic: "bin", Key: []byte{0xff, 0}, Value: []byte{0, 1, 0xfe}}
	if err := g.client.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	n := c.waitNotifs(1)[0]
	if n.Enc != "base64" || n.P != base64.StdEncoding.EncodeToString(rec.Value) || n.Key == nil || *n.Key != base64.StdEncoding.EncodeToString(rec.Key) {
		t.Errorf("got %+v, want base64 key and value", n)
	}
}

// TestStalledReaderBounded: a client that stops reading holds at most its
// send queue (its consumer pauses fetching) and does not hold up the other
// member of its group, which gets its own partition's records while the
// stalled one is still connected. After the write timeout the stalled client
// is disconnected and its partition goes to the other member from the
// offsets of what was written to it: every record reaches exactly one of the
// two.
func TestStalledReaderBounded(t *testing.T) {
	const (
		queueBytes = 64 << 10
		perFrame   = 20
		valueBytes = 4 << 10
		n          = 3000 // 12 MB: more than the socket buffers take
	)
	g := startGateway(t, setup{opts: Options{SendQueueBytes: queueBytes, MaxNotifsPerFrame: perFrame, WriteTimeout: 8 * time.Second}})
	testcluster.CreateTopic(t, g.brokers, "big", 2)

	// The stalled client subscribes, then reads nothing until the end.
	stalled := wsgatetest.Dial(t, g.url, nil)
	if err := stalled.WriteJSON(map[string]any{"id": 1, "t": "topic", "a": "subscribe", "p": map[string]any{"t": []string{"big"}, "consumer_group": "g"}}); err != nil {
		t.Fatal(err)
	}
	if _, b, err := stalled.ReadMessage(); err != nil || !strings.Contains(string(b), `"s":0`) {
		t.Fatalf("stalled client's subscribe: got %s %v", b, err)
	}
	other := dial(t, g.url, nil)
	other.subscribe(2, "g", "big")

	// Samples each connection's send queue while records pile up.
	maxQueued := 0.0
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			for _, c := range g.h.gate.Conns() {
				maxQueued = max(maxQueued, float64(c.queue.size()))
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := fmt.Sprintf("%06d", i)
		recs[i] = &kgo.Record{Topic: "big", Partition: int32(i % 2), Value: []byte(v + strings.Repeat("x", valueBytes-len(v)))}
	}
	if err := g.client.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	other.waitNotifs(n / 2)
	if got := value(g.h.metrics.Closed.WithLabelValues(wsgate.ClosedStalled)); got != 0 || g.h.Connections() != 2 {
		t.Fatalf("the other member got its partition only after the stalled client was closed (closed %v, %d connections)", got, g.h.Connections())
	}
	testwait.Eventually(t, replyTimeout, "the stalled client disconnected", func() bool {
		return value(g.h.metrics.Closed.WithLabelValues(wsgate.ClosedStalled)) == 1
	})
	close(stop)
	<-sampled
	if value(g.h.metrics.pauses) == 0 {
		t.Error("send_queue_pauses_total: got 0, want the consumer paused")
	}
	bound := float64(queueBytes + perFrame*(valueBytes+recordOverhead))
	if maxQueued > bound || maxQueued == 0 {
		t.Errorf("send queue: peaked at %.0f bytes, want 0 < peak <= %.0f (queue plus one poll)", maxQueued, bound)
	}

	// What the stalled client was sent is in its socket buffers: read it now,
	// up to the end of the connection (a frame cut by the timeout ends it).
	sent := map[string]bool{}
	_ = stalled.SetReadDeadline(time.Now().Add(replyTimeout))
	for {
		_, b, err := stalled.ReadMessage()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("stalled client: the connection is still open: %v", err)
			}
			break
		}
		var ns []notification
		if json.Unmarshal(b, &ns) == nil {
			for _, nt := range ns {
				sent[nt.P[:6]] = true
			}
		}
	}
	if len(sent) == 0 || len(sent) >= n/2 {
		t.Fatalf("the stalled client was sent %d records: want some, and fewer than its partition's %d", len(sent), n/2)
	}
	t.Logf("send queue peak %.0f bytes (bound %.0f), %d pauses; the stalled client was sent %d of its partition's %d records",
		maxQueued, bound, int(value(g.h.metrics.pauses)), len(sent), n/2)

	got := other.waitNotifs(n - len(sent))
	other.fence()
	seen := map[string]bool{}
	for _, nt := range other.received() {
		k := nt.P[:6]
		if seen[k] || sent[k] {
			t.Fatalf("record %s delivered twice", k)
		}
		seen[k] = true
	}
	if len(seen)+len(sent) != n {
		t.Errorf("got %d records at the other member and %d at the stalled one, want %d in all (%d)", len(seen), len(sent), n, len(got))
	}
}
