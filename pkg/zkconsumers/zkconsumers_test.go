package zkconsumers

import (
	"encoding/json"
	"testing"
	"time"
)

func TestLayoutPaths(t *testing.T) {
	for _, tc := range []struct {
		chroot, want string
	}{{"", "/consumers/m/offsets/t/3"}, {"/", "/consumers/m/offsets/t/3"}, {"/mq/test_cluster", "/mq/test_cluster/consumers/m/offsets/t/3"}, {"mq/x/", "/mq/x/consumers/m/offsets/t/3"}} {
		if got := New(tc.chroot).Offset("m", "t", 3); got != tc.want {
			t.Errorf("chroot %q: got %s, want %s", tc.chroot, got, tc.want)
		}
	}
	l := New("/c")
	for got, want := range map[string]string{
		l.ID("m", "i-1"):         "/c/consumers/m/ids/i-1",
		l.Owner("m", "t", 0):     "/c/consumers/m/owners/t/0",
		l.OffsetsTopic("m", "t"): "/c/consumers/m/offsets/t",
		l.BrokerIDs():            "/c/brokers/ids",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

func TestOffsetCoding(t *testing.T) {
	if got := string(EncodeOffset(12345)); got != "12345" {
		t.Errorf("got %q, want 12345", got)
	}
	for in, want := range map[string]int64{"0": 0, "42\n": 42, " 7 ": 7} {
		if got, err := DecodeOffset([]byte(in)); err != nil || got != want {
			t.Errorf("DecodeOffset(%q): got %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1.5"} {
		if _, err := DecodeOffset([]byte(bad)); err == nil {
			t.Errorf("DecodeOffset(%q): got no error", bad)
		}
	}
}

func TestRegistrationJSON(t *testing.T) {
	r := NewRegistration("orders", time.UnixMilli(1700000000123))
	var got map[string]any
	if err := json.Unmarshal(r.Encode(), &got); err != nil {
		t.Fatal(err)
	}
	want := `{"pattern":"static","subscription":{"orders":1},"timestamp":"1700000000123","version":1}`
	if b, _ := json.Marshal(got); string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	if _, err := ParsePartition("-1"); err == nil {
		t.Error("ParsePartition(-1): got no error")
	}
	if p, err := ParsePartition("17"); err != nil || p != 17 {
		t.Errorf("ParsePartition(17): got %d %v", p, err)
	}
}

// TestRegistrationAddedFields: the fields ktransfer adds are omitted when unset,
// so the registration is then exactly Kafka's.
func TestRegistrationAddedFields(t *testing.T) {
	r := NewRegistration("orders", time.UnixMilli(1700000000123))
	r.OpsListen, r.Host, r.PID = "127.0.0.1:5041", "h1", 42
	var got map[string]any
	if err := json.Unmarshal(r.Encode(), &got); err != nil {
		t.Fatal(err)
	}
	want := `{"host":"h1","ops_listen":"127.0.0.1:5041","pattern":"static","pid":42,"subscription":{"orders":1},"timestamp":"1700000000123","version":1}`
	if b, _ := json.Marshal(got); string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}
