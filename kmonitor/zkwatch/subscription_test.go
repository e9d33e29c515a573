package zkwatch

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

func TestParseSubscription(t *testing.T) {
	for _, tc := range []struct {
		data string
		want []string
		err  bool
	}{
		{string(zkconsumers.NewRegistration("orders", time.Unix(1, 0)).Encode()), []string{"orders"}, false},
		{`{"version":1,"subscription":{"b":1,"a":2},"pattern":"static"}`, []string{"a", "b"}, false},
		{`{"subscription":{"a":1}}`, []string{"a"}, false},
		{`{"version":1,"subscription":{"or.*":1},"pattern":"white_list"}`, nil, false},
		{`{"subscription":{"bad topic":1,"..":1,"ok":1}}`, []string{"ok"}, false},
		{`{"subscription":null}`, nil, false},
		{`not json`, nil, true},
		{``, nil, true},
	} {
		got, err := parseSubscription([]byte(tc.data))
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, %v; want %v, error %v", tc.data, got, err, tc.want, tc.err)
		}
	}
	many := map[string]int{}
	for i := range 500 {
		many[fmt.Sprintf("t%03d", i)] = 1
	}
	b, _ := json.Marshal(map[string]any{"subscription": many})
	if got, _ := parseSubscription(b); len(got) != maxSubscriptionTopics || got[0] != "t000" {
		t.Errorf("500 topics: got %d from %v, want the first %d", len(got), got[:1], maxSubscriptionTopics)
	}
}

// FuzzSubscription feeds arbitrary registrations (any ZooKeeper client may
// write one) to parseSubscription: whatever it returns are legal topic names,
// sorted, without repeats, at most maxSubscriptionTopics; a registration as
// ktransfer writes it gives back its topic.
func FuzzSubscription(f *testing.F) {
	f.Add([]byte(`{"version":1,"subscription":{"orders":1},"pattern":"static","timestamp":"1"}`), "orders")
	f.Add([]byte(`{"subscription":{"a":1,"a":1,"b/c":1}}`), "a")
	f.Add([]byte(`{"pattern":"white_list","subscription":{".*":1}}`), "x.y")
	f.Add([]byte(`{"subscription":{"\u00e9":1}}`), "_")
	f.Fuzz(func(t *testing.T, data []byte, topic string) {
		got, err := parseSubscription(data)
		if err != nil && got != nil {
			t.Fatalf("error %v with topics %v", err, got)
		}
		if len(got) > maxSubscriptionTopics || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("got %d topics %v, want at most %d, sorted, unique", len(got), got, maxSubscriptionTopics)
		}
		for _, tp := range got {
			if !legalTopic(tp) {
				t.Fatalf("got illegal topic %q", tp)
			}
		}
		if legalTopic(topic) {
			reg := zkconsumers.NewRegistration(topic, time.Unix(1, 0)).Encode()
			if got, err := parseSubscription(reg); err != nil || !slices.Equal(got, []string{topic}) {
				t.Fatalf("registration of %q: got %v, %v", topic, got, err)
			}
		}
	})
}
