package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

const chroot = "/mq/test_cluster"

// TestDelayOriginalShapes checks /delay byte for byte in the original shapes for
// the README's example state: two modules of one topic, lag 12 and 0.
func TestDelayOriginalShapes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	e.produce(t, "t", 0, 12, time.Time{})
	commit(t, e.conn, chroot, "test_module_1", "t", 0, 0)
	commit(t, e.conn, chroot, "test_module_2", "t", 0, 12)
	r := start(t, testConfig(200*time.Millisecond, 10, e.clusterConfig("test_cluster", chroot)))

	const wantJSON = `{"test_cluster":{"test_module_1":{"0":12},"test_module_2":{"0":0}}}`
	testwait.Eventually(t, 10*time.Second, "/delay shows the example state", func() bool {
		return r.body(t, "/delay") == wantJSON
	})
	tests := []struct {
		query, want, contentType string
	}{
		{"/delay", wantJSON, "application/json"},
		{"/delay?format=json&cluster=test_cluster", wantJSON, "application/json"},
		{"/delay?format=zabbix", "- test_cluster.test_module_1.0.delay 12\n- test_cluster.test_module_2.0.delay 0\n", "text/plain; charset=utf-8"},
		{"/delay?format=zabbix_discovery", `{"data":[` +
			`{"{#CLUSTER}":"test_cluster","{#MODULE}":"test_module_1","{#TOPIC}":"t","{#PARTITION}":"0"},` +
			`{"{#CLUSTER}":"test_cluster","{#MODULE}":"test_module_2","{#TOPIC}":"t","{#PARTITION}":"0"}]}`, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp, err := http.Get(r.url + tt.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := readAll(t, resp); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type: got %q, want %q", got, tt.contentType)
			}
		})
	}

	// The rest of the operations endpoints.
	if code, b := get(t, r.url+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: got %d %s, want 200", code, b)
	}
	testwait.Eventually(t, 10*time.Second, "/readyz 200", func() bool {
		code, _ := get(t, r.url+"/readyz")
		return code == http.StatusOK
	})
	// By default /metrics has per-module and per-status series, not the
	// per-partition ones.
	metrics := scrape(t, r)
	for _, want := range []string{
		`kmonitor_module_lag_records{cluster="test_cluster",module="test_module_1"} 12`,
		`kmonitor_module_lag_records{cluster="test_cluster",module="test_module_2"} 0`,
		`kmonitor_module_lag_seconds{cluster="test_cluster",module="test_module_2"} 0`,
		`kmonitor_module_status{cluster="test_cluster",module="test_module_1"} 0`,
		`kmonitor_partitions{cluster="test_cluster",status="OK"} 2`,
		`kmonitor_partitions{cluster="test_cluster",status="OUT_OF_RANGE"} 0`,
		`kmonitor_partitions_no_commit{cluster="test_cluster"} 0`,
		`kmonitor_partitions_stale{cluster="test_cluster"} 0`,
		`kmonitor_groups{cluster="test_cluster",state="tracked"} 2`,
		`kmonitor_groups{cluster="test_cluster",state="over_cap"} 0`,
		`kmonitor_zookeeper_connected{cluster="test_cluster"} 1`,
		`kmonitor_poll_duration_seconds_count{cluster="test_cluster"}`,
		`go_goroutines `,
	} {
		if !strings.Contains(metrics, "\n"+want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, "kmonitor_lag_records{") {
		t.Error("/metrics has per-partition series without metrics_per_partition")
	}
	// With metrics_per_partition, eight series per module partition.
	cfg := testConfig(200*time.Millisecond, 10, e.clusterConfig("test_cluster", chroot))
	cfg.Base.MetricsPerPartition = true
	rp := start(t, cfg)
	testwait.Eventually(t, 10*time.Second, "/delay of the second monitor", func() bool {
		return rp.body(t, "/delay") == wantJSON
	})
	metrics = scrape(t, rp)
	for _, want := range []string{
		`kmonitor_lag_records{cluster="test_cluster",module="test_module_1",partition="0",topic="t"} 12`,
		`kmonitor_committed_offset{cluster="test_cluster",module="test_module_2",partition="0",topic="t"} 12`,
		`kmonitor_log_end_offset{cluster="test_cluster",module="test_module_1",partition="0",topic="t"} 12`,
		`kmonitor_log_start_offset{cluster="test_cluster",module="test_module_1",partition="0",topic="t"} 0`,
		`kmonitor_partition_status{cluster="test_cluster",module="test_module_1",partition="0",topic="t"} 0`,
		`kmonitor_partition_no_commit{cluster="test_cluster",module="test_module_1",partition="0",topic="t"} 0`,
		`kmonitor_partition_stale{cluster="test_cluster",module="test_module_1",partition="0",topic="t"} 0`,
		`kmonitor_lag_seconds{cluster="test_cluster",module="test_module_2",partition="0",topic="t"} 0`,
		`kmonitor_module_lag_records{cluster="test_cluster",module="test_module_1"} 12`,
	} {
		if !strings.Contains(metrics, "\n"+want+"\n") {
			t.Errorf("/metrics with metrics_per_partition lacks %s", want)
		}
	}
	testwait.Eventually(t, 10*time.Second, "an hour's history has points", func() bool {
		h := r.m.History(time.Hour)
		p1, p2 := h["test_cluster/test_module_1"], h["test_cluster/test_module_2"]
		return len(p1) >= 2 && len(p2) >= 2 && p1[len(p1)-1].Lag == 12 && p2[len(p2)-1].Lag == 0 &&
			!p1[0].Time.After(p1[len(p1)-1].Time)
	})
	if h := r.m.History(0); len(h) != 0 {
		t.Errorf("History(0): got %d modules, want none", len(h))
	}
}

// scrape returns /metrics after checking it is the Prometheus text format and
// parses (every family once, every line well-formed).
func scrape(t *testing.T, r *running) string {
	t.Helper()
	resp, err := http.Get(r.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("/metrics: got %d %s, want 200 in the text format", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := p.TextToMetricFamilies(strings.NewReader(body)); err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return body
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := start(t, testConfig(200*time.Millisecond, 10, e.clusterConfig("test_cluster", chroot)))
	tests := []struct {
		method, query string
		status        int
		code          string
	}{
		{"GET", "/delay?cluster=nope", 400, "unknown_cluster"},
		{"GET", "/delay?cluster=", 400, "unknown_cluster"},
		{"GET", "/delay?format=xml", 400, "unknown_format"},
		{"GET", "/delay?unit=hours", 400, "unknown_unit"},
		{"GET", "/lag?cluster=nope", 400, "unknown_cluster"},
		{"POST", "/delay", 405, "method_not_allowed"},
		// Go's query parser drops "format=zabbix;x=1" whole: answering JSON
		// to a Zabbix poller would be silent.
		{"GET", "/delay?format=zabbix;x=1", 400, "bad_query"},
		{"GET", "/delay?format=zabbix&x=%zz", 400, "bad_query"},
		{"GET", "/lag?cluster=test_cluster;", 400, "bad_query"},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.query, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, r.url+tt.query, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Error, Code string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if resp.StatusCode != tt.status || body.Code != tt.code || body.Error == "" {
				t.Errorf("got %d %+v, want %d code %s with a reason", resp.StatusCode, body, tt.status, tt.code)
			}
			// The configured clusters are not every client's business.
			if tt.code == "unknown_cluster" && strings.Contains(body.Error, "test_cluster") {
				t.Errorf("reason %q lists the configured cluster", body.Error)
			}
		})
	}
	// A cluster without any module still appears, empty.
	if got := r.body(t, "/delay"); got != `{"test_cluster":{}}` {
		t.Errorf("got %s, want {\"test_cluster\":{}}", got)
	}
	if got := r.body(t, "/delay?format=zabbix_discovery"); got != `{"data":[]}` {
		t.Errorf("got %s, want {\"data\":[]}", got)
	}
	if got := r.body(t, "/lag"); got != `[]` {
		t.Errorf("got %s, want []", got)
	}
}

// TestUpdates: a commit shows through the ZooKeeper watch (the poll interval is
// far longer), new records within a poll interval, and groups, topics and
// partitions appearing or disappearing are followed.
func TestUpdates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 2)
	testcluster.CreateTopic(t, e.brokers, "u", 1)
	e.produce(t, "t", 0, 12, time.Time{})
	commit(t, e.conn, chroot, "m1", "t", 0, 0)

	// Long poll interval: only the watch can explain a quick change.
	slow := start(t, testConfig(time.Minute, 10, e.clusterConfig("c", chroot)))
	testwait.Eventually(t, 10*time.Second, "first poll", func() bool {
		return slow.body(t, "/delay") == `{"c":{"m1":{"0":12}}}`
	})
	commit(t, e.conn, chroot, "m1", "t", 0, 5)
	testwait.Eventually(t, time.Second, "commit seen through the watch", func() bool {
		return slow.body(t, "/delay") == `{"c":{"m1":{"0":7}}}`
	})

	fast := start(t, testConfig(200*time.Millisecond, 10, e.clusterConfig("c", chroot)))
	testwait.Eventually(t, 10*time.Second, "first poll", func() bool {
		return fast.body(t, "/delay") == `{"c":{"m1":{"0":7}}}`
	})
	e.produce(t, "t", 0, 3, time.Time{})
	testwait.Eventually(t, 2*time.Second, "new records within a poll interval", func() bool {
		return fast.body(t, "/delay") == `{"c":{"m1":{"0":10}}}`
	})
	// A new group, a new topic of an existing group, a new partition.
	e.produce(t, "u", 0, 4, time.Time{})
	commit(t, e.conn, chroot, "m2", "t", 1, 0)
	commit(t, e.conn, chroot, "m1", "u", 0, 1)
	commit(t, e.conn, chroot, "m1", "t", 1, 0)
	testwait.Eventually(t, 5*time.Second, "new group, topic and partition", func() bool {
		return fast.body(t, "/delay") == `{"c":{"m1":{"0":13,"1":0},"m2":{"1":0}}}`
	})
	if got := fast.body(t, "/delay?format=zabbix"); got != "- c.m1.0.delay 13\n- c.m1.1.delay 0\n- c.m2.1.delay 0\n" {
		t.Errorf("zabbix: got %q", got)
	}
	// Deleted ones drop out.
	testcluster.RemoveTree(t, e.conn, chroot+"/consumers/m2")
	testcluster.RemoveTree(t, e.conn, chroot+"/consumers/m1/offsets/u")
	testwait.Eventually(t, 5*time.Second, "deleted group and topic gone", func() bool {
		return fast.body(t, "/delay") == `{"c":{"m1":{"0":10,"1":0}}}`
	})
}

// TestSeveralClusters monitors two chroots of one ZooKeeper as two clusters; the
// second finds its brokers in {chroot}/brokers/ids.
func TestSeveralClusters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	e.produce(t, "t", 0, 10, time.Time{})
	commit(t, e.conn, "/a", "ma", "t", 0, 4)
	commit(t, e.conn, "/b", "mb", "t", 0, 9)
	host, port, _ := strings.Cut(e.brokers[0], ":")
	ensure(t, e.conn, "/b/brokers/ids/0", []byte(fmt.Sprintf(`{"host":%q,"port":%s}`, host, port)))
	b := e.clusterConfig("beta", "/b")
	b.BrokerHosts = nil
	r := start(t, testConfig(200*time.Millisecond, 10, e.clusterConfig("alpha", "/a"), b))
	testwait.Eventually(t, 10*time.Second, "both clusters", func() bool {
		return r.body(t, "/delay") == `{"alpha":{"ma":{"0":6}},"beta":{"mb":{"0":1}}}`
	})
	for q, want := range map[string]string{
		"/delay?cluster=beta":                `{"beta":{"mb":{"0":1}}}`,
		"/delay?cluster=alpha&format=zabbix": "- alpha.ma.0.delay 6\n",
	} {
		if got := r.body(t, q); got != want {
			t.Errorf("%s: got %q, want %q", q, got, want)
		}
	}
	if rows := r.lag(t, "?cluster=alpha"); len(rows) != 1 || rows[0].Cluster != "alpha" {
		t.Errorf("/lag?cluster=alpha: got %+v, want alpha's one row", rows)
	}
}

// TestTimeLag produces records with known timestamps and checks the time lag is
// the age of the record at the committed offset.
func TestTimeLag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	now := time.Now()
	e.produce(t, "t", 0, 1, now.Add(-time.Hour))
	e.produce(t, "t", 0, 1, now.Add(-30*time.Minute))
	commit(t, e.conn, chroot, "m", "t", 0, 0)
	commit(t, e.conn, chroot, "done", "t", 0, 2)
	r := start(t, testConfig(200*time.Millisecond, 10, e.clusterConfig("c", chroot)))
	checkTimeLag(t, r, func(off int64) { commit(t, e.conn, chroot, "m", "t", 0, off) })
}

// checkTimeLag checks the time lag of cluster c's topic t, whose partition 0
// holds two records an hour and half an hour old: module m committed at 0
// shows the older one's age, "done" (committed at 2) shows 0; after commit
// moves m to 1, m shows the younger one's age in /lag, /delay?unit=seconds
// (JSON and zabbix) and /metrics.
func checkTimeLag(t *testing.T, r *running, commit func(off int64)) {
	t.Helper()
	near := func(got, want float64) bool { return got >= want && got < want+60 }
	testwait.Eventually(t, 10*time.Second, "time lag of the record at offset 0", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && row.Lag == 2 && near(row.TimeLagSeconds, 3600)
	})
	if row := r.row(t, "c", "done", "t", 0); row == nil || row.Lag != 0 || row.TimeLagSeconds != 0 {
		t.Errorf("caught-up module: got %+v, want lag 0 and time lag 0", row)
	}
	commit(1)
	testwait.Eventually(t, 10*time.Second, "time lag of the record at offset 1", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && row.Lag == 1 && near(row.TimeLagSeconds, 1800)
	})
	var got map[string]map[string]map[string]float64
	if err := json.Unmarshal([]byte(r.body(t, "/delay?unit=seconds")), &got); err != nil {
		t.Fatal(err)
	}
	if s := got["c"]["m"]["0"]; !near(s, 1800) {
		t.Errorf("/delay?unit=seconds: got %v for m, want about 1800", s)
	}
	if s, ok := got["c"]["done"]["0"]; !ok || s != 0 {
		t.Errorf("/delay?unit=seconds: got %v for done, want 0", s)
	}
	zbx := r.body(t, "/delay?format=zabbix&unit=seconds")
	if !strings.Contains(zbx, "- c.done.0.delay_seconds 0\n") || !strings.Contains(zbx, "- c.m.0.delay_seconds 18") {
		t.Errorf("zabbix seconds: got %q", zbx)
	}
	if m := scrape(t, r); !strings.Contains(m, `kmonitor_module_lag_seconds{cluster="c",module="m"} 18`) {
		t.Errorf("/metrics lacks the time lag of m")
	}
}

// TestNoCommitAndClamping: a partition with an owner but no offset node is "no
// commit yet", not lag; a committed offset below the log start counts from there.
func TestNoCommitAndClamping(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 2)
	e.produce(t, "t", 0, 10, time.Time{})
	e.produce(t, "t", 1, 50, time.Time{})
	commit(t, e.conn, chroot, "m", "t", 0, 2)
	own(t, e.conn, chroot, "m", "t", 1, "host-1")
	own(t, e.conn, chroot, "fresh", "t", 0, "host-2")

	adm := kadm.NewClient(e.client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var del kadm.Offsets
	del.Add(kadm.Offset{Topic: "t", Partition: 0, At: 6})
	if _, err := adm.DeleteRecords(ctx, del); err != nil {
		t.Fatalf("delete records: %v", err)
	}
	r := start(t, testConfig(200*time.Millisecond, 3, e.clusterConfig("c", chroot)))

	testwait.Eventually(t, 10*time.Second, "clamped lag", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && row.Lag == 4 && row.LogStart != nil && *row.LogStart == 6 && !row.Stale
	})
	if got := r.body(t, "/delay"); got != `{"c":{"m":{"0":4}}}` {
		t.Errorf("/delay: got %s, want only the committed partition", got)
	}
	row := r.row(t, "c", "m", "t", 1)
	if row == nil || !row.NoCommit || row.Committed != nil || row.Lag != 0 || row.Owner != "host-1" || row.LastCommit != nil {
		t.Errorf("no-commit row: got %+v", row)
	}
	if row := r.row(t, "c", "fresh", "t", 1); row == nil || !row.NoCommit {
		t.Errorf("partition 1 of a group with only owners: got %+v, want a no-commit row", row)
	}
	// Without any commit for the whole window the partition is STOP.
	testwait.Eventually(t, 10*time.Second, "no commit for the window is STOP", func() bool {
		row := r.row(t, "c", "fresh", "t", 0)
		return row != nil && row.Status == StatusStop
	})
	// A commit at the log start of a deleted prefix: lag from the log start.
	commit(t, e.conn, chroot, "m", "t", 0, 10)
	testwait.Eventually(t, 5*time.Second, "caught up", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && row.Lag == 0 && row.TimeLagSeconds == 0
	})
}

// TestStatuses drives STALL and REWIND through ZooKeeper and Kafka.
func TestStatuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	e.produce(t, "t", 0, 20, time.Time{})
	commit(t, e.conn, chroot, "m", "t", 0, 10)
	own(t, e.conn, chroot, "m", "t", 0, "host-1")
	r := start(t, testConfig(100*time.Millisecond, 3, e.clusterConfig("c", chroot)))
	status := func() Status {
		row := r.row(t, "c", "m", "t", 0)
		if row == nil {
			return -1
		}
		return row.Status
	}
	testwait.Eventually(t, 10*time.Second, "STALL while the commit stands still with lag", func() bool { return status() == StatusStall })
	commit(t, e.conn, chroot, "m", "t", 0, 4)
	testwait.Eventually(t, 10*time.Second, "REWIND after the offset went back", func() bool { return status() == StatusRewind })
	commit(t, e.conn, chroot, "m", "t", 0, 20)
	testwait.Eventually(t, 10*time.Second, "OK once caught up", func() bool { return status() == StatusOK })
}

// TestStaleWhileZooKeeperDown stops ZooKeeper: the last values stay, marked
// stale, /readyz fails; after a restart everything recovers, watches included.
func TestStaleWhileZooKeeperDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	e.produce(t, "t", 0, 12, time.Time{})
	commit(t, e.conn, chroot, "m", "t", 0, 2)
	r := start(t, testConfig(200*time.Millisecond, 10, e.clusterConfig("c", chroot)))
	testwait.Eventually(t, 10*time.Second, "fresh values", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && row.Lag == 10 && !row.Stale
	})

	e.zk.Stop()
	testwait.Eventually(t, 15*time.Second, "stale while ZooKeeper is down", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && row.Lag == 10 && row.Stale
	})
	if got := r.body(t, "/delay"); got != `{"c":{"m":{"0":10}}}` {
		t.Errorf("/delay while stale: got %s, want the last values", got)
	}
	if code, _ := get(t, r.url+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz: got %d, want 503", code)
	}
	e.produce(t, "t", 0, 3, time.Time{}) // Kafka keeps being polled
	testwait.Eventually(t, 5*time.Second, "log end still polled", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && row.Lag == 13
	})

	e.zk.Start(t)
	testwait.Eventually(t, 20*time.Second, "fresh again", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && !row.Stale
	})
	conn := e.zk.Conn(t)
	commit(t, conn, chroot, "m", "t", 0, 15)
	testwait.Eventually(t, 10*time.Second, "watch works after the restart", func() bool {
		return r.body(t, "/delay") == `{"c":{"m":{"0":0}}}`
	})
	testwait.Eventually(t, 10*time.Second, "/readyz 200", func() bool {
		code, _ := get(t, r.url+"/readyz")
		return code == http.StatusOK
	})
}

// TestOneListOffsetsPerBroker polls eight partitions led by two brokers and
// counts the ListOffsets requests of one poll: one per broker for the log start
// and one for the log end.
func TestOneListOffsetsPerBroker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, kfake.NumBrokers(2))
	testcluster.CreateTopic(t, e.brokers, "t", 8)
	for p := int32(0); p < 8; p++ {
		e.produce(t, "t", p, int(p)+1, time.Time{})
		commit(t, e.conn, chroot, "m", "t", p, 0)
	}
	var listOffsets atomic.Int64
	e.kafka.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		e.kafka.KeepControl()
		listOffsets.Add(1)
		return nil, nil, false
	})
	m, err := New(testConfig(time.Hour, 10, e.clusterConfig("c", chroot)), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	c := m.clusters[0]
	ctx, cancel := context.WithCancel(context.Background())
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.src.Run(wctx) }()
	t.Cleanup(func() { cancel(); m.Close(); <-done; wcancel() })
	testwait.Eventually(t, 10*time.Second, "all offsets watched", func() bool {
		return len(c.src.Snapshot().Parts) == 8
	})
	c.pollOnce(ctx) // connects, loads metadata
	listOffsets.Store(0)
	c.pollOnce(ctx)
	if got := listOffsets.Load(); got != 4 {
		t.Errorf("ListOffsets requests in one poll: got %d, want 4 (2 brokers × start and end)", got)
	}
	rows := m.Partitions()
	if len(rows) != 8 {
		t.Fatalf("got %d rows, want 8", len(rows))
	}
	for _, row := range rows {
		if want := int64(row.Partition) + 1; row.Lag != want || row.Stale {
			t.Errorf("partition %d: got lag %d stale %v, want %d fresh", row.Partition, row.Lag, row.Stale, want)
		}
	}
}

// TestStaleWhileKafkaFails makes every ListOffsets fail for a while: the last
// values stay, marked stale, /readyz fails, and all recovers afterwards.
func TestStaleWhileKafkaFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	e.produce(t, "t", 0, 12, time.Time{})
	commit(t, e.conn, chroot, "m", "t", 0, 2)
	var failing atomic.Bool
	e.kafka.ControlKey(int16(kmsg.ListOffsets), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.kafka.KeepControl()
		if !failing.Load() {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.(*kmsg.ListOffsetsRequest).Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.UnknownServerError.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	r := start(t, testConfig(200*time.Millisecond, 10, e.clusterConfig("c", chroot)))
	testwait.Eventually(t, 10*time.Second, "fresh values", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && row.Lag == 10 && !row.Stale
	})
	failing.Store(true)
	testwait.Eventually(t, 10*time.Second, "stale while Kafka fails", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && row.Lag == 10 && row.Stale
	})
	if code, _ := get(t, r.url+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz: got %d, want 503", code)
	}
	if got := r.body(t, "/delay"); got != `{"c":{"m":{"0":10}}}` {
		t.Errorf("/delay while stale: got %s, want the last values", got)
	}
	failing.Store(false)
	e.produce(t, "t", 0, 1, time.Time{})
	testwait.Eventually(t, 10*time.Second, "fresh again", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && row.Lag == 11 && !row.Stale
	})
}
