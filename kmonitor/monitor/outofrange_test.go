package monitor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// TestOutOfRange: a topic deleted and recreated under a module leaves its
// committed offset above the new log end, and retention deleting records a
// module never pushed leaves one below the log start. Both are out of range:
// their own status, and a lag that counts the whole log from its start (what a
// module resuming at the log start pushes), never "lag 0, OK".
func TestOutOfRange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	testcluster.CreateTopic(t, e.brokers, "u", 1)
	e.produce(t, "t", 0, 500, time.Time{})
	e.produce(t, "u", 0, 10, time.Time{})
	commit(t, e.conn, chroot, "pusher", "t", 0, 500)
	own(t, e.conn, chroot, "pusher", "t", 0, "host-1")
	commit(t, e.conn, chroot, "behind", "u", 0, 2)
	cfg := testConfig(200*time.Millisecond, 5, e.clusterConfig("c", chroot))
	cfg.Base.MetricsPerPartition = true
	r := start(t, cfg)
	testwait.Eventually(t, 10*time.Second, "the module caught up", func() bool {
		return r.body(t, "/delay") == `{"c":{"behind":{"0":8},"pusher":{"0":0}}}`
	})

	// Recreate t with 200 records an hour old; delete u's records below 6.
	adm := kadm.NewClient(e.client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := adm.DeleteTopics(ctx, "t"); err != nil {
		t.Fatalf("delete topic t: %v", err)
	}
	testwait.Eventually(t, 10*time.Second, "topic t gone", func() bool {
		md, err := adm.Metadata(ctx, "t")
		return err == nil && md.Topics["t"].Err != nil
	})
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	hourAgo := time.Now().Add(-time.Hour)
	e.produce(t, "t", 0, 200, hourAgo)
	var del kadm.Offsets
	del.Add(kadm.Offset{Topic: "u", Partition: 0, At: 6})
	if _, err := adm.DeleteRecords(ctx, del); err != nil {
		t.Fatalf("delete records: %v", err)
	}

	const wantJSON = `{"c":{"behind":{"0":4},"pusher":{"0":200}}}`
	testwait.Eventually(t, 15*time.Second, "both out of range", func() bool {
		if r.body(t, "/delay") != wantJSON {
			return false
		}
		a, b := r.row(t, "c", "pusher", "t", 0), r.row(t, "c", "behind", "u", 0)
		return a != nil && b != nil && a.Status == StatusOutOfRange && b.Status == StatusOutOfRange &&
			a.TimeLagSeconds > 0 // the new topic's record read
	})
	for q, want := range map[string]string{
		"/delay":               wantJSON,
		"/delay?format=zabbix": "- c.behind.0.delay 4\n- c.pusher.0.delay 200\n",
	} {
		if got := r.body(t, q); got != want {
			t.Errorf("%s: got %q, want %q", q, got, want)
		}
	}
	row := r.row(t, "c", "pusher", "t", 0)
	if row.Committed == nil || *row.Committed != 500 || *row.LogStart != 0 || *row.LogEnd != 200 || row.Lag != 200 || !row.OutOfRange || row.NoCommit {
		t.Errorf("recreated topic: got %+v, want committed 500, log 0..200, lag 200, out of range", row)
	}
	if row.TimeLagSeconds < 3600 || row.TimeLagSeconds > 3660 {
		t.Errorf("recreated topic: got time lag %v, want the age of the record at the log start, about 3600 s", row.TimeLagSeconds)
	}
	if row := r.row(t, "c", "behind", "u", 0); row.Lag != 4 || !row.OutOfRange || *row.LogStart != 6 {
		t.Errorf("deleted below the commit: got %+v, want lag 4 from the log start 6, out of range", row)
	}
	if got := r.body(t, "/delay?format=zabbix&unit=seconds"); !strings.Contains(got, "- c.pusher.0.delay_seconds 36") {
		t.Errorf("zabbix seconds: got %q, want the pusher at about 3600", got)
	}
	metrics := scrape(t, r)
	for _, want := range []string{
		`kmonitor_partition_status{cluster="c",module="pusher",partition="0",topic="t"} 5`,
		`kmonitor_partition_status{cluster="c",module="behind",partition="0",topic="u"} 5`,
		`kmonitor_lag_records{cluster="c",module="pusher",partition="0",topic="t"} 200`,
		`kmonitor_module_status{cluster="c",module="pusher"} 5`,
		`kmonitor_partitions{cluster="c",status="OUT_OF_RANGE"} 2`,
	} {
		if !strings.Contains(metrics, "\n"+want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The module resumes at the log start (ktransfer's offset_reset oldest):
	// in range again, the offset went back, then it catches up.
	commit(t, e.conn, chroot, "pusher", "t", 0, 0)
	testwait.Eventually(t, 10*time.Second, "back in range", func() bool {
		row := r.row(t, "c", "pusher", "t", 0)
		return row != nil && !row.OutOfRange && row.Lag == 200 && row.Status == StatusRewind
	})
	commit(t, e.conn, chroot, "pusher", "t", 0, 200)
	testwait.Eventually(t, 10*time.Second, "caught up", func() bool {
		return r.body(t, "/delay") == `{"c":{"behind":{"0":4},"pusher":{"0":0}}}`
	})
}

// TestCommitAheadOfLastPoll: a commit above the log end read by the last poll
// only means the log grew since; it is caught up, not out of range.
func TestCommitAheadOfLastPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	e.produce(t, "t", 0, 12, time.Time{})
	commit(t, e.conn, chroot, "m", "t", 0, 12)
	// One poll a minute: only the watch shows the next commit.
	r := start(t, testConfig(time.Minute, 2, e.clusterConfig("c", chroot)))
	testwait.Eventually(t, 10*time.Second, "first poll", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && row.LogEnd != nil && *row.LogEnd == 12
	})
	e.produce(t, "t", 0, 3, time.Time{})
	commit(t, e.conn, chroot, "m", "t", 0, 15)
	testwait.Eventually(t, 5*time.Second, "the commit seen", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && *row.Committed == 15
	})
	row := r.row(t, "c", "m", "t", 0)
	if row.OutOfRange || row.Lag != 0 || *row.LogEnd != 12 {
		t.Errorf("got %+v, want lag 0 in range against the last log end 12", row)
	}
	if got := r.body(t, "/delay"); got != `{"c":{"m":{"0":0}}}` {
		t.Errorf("/delay: got %s", got)
	}
}
