package monitor

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// TestGroupsFilterAndCap: groups.deny leaves console consumers out, max_groups
// bounds the rest in name order with a warning and a metric, a freed slot is
// taken by a waiting group, and a new group never displaces a monitored one.
func TestGroupsFilterAndCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	e.produce(t, "t", 0, 10, time.Time{})
	for _, g := range []string{"console-consumer-7", "a", "b", "c", "d"} {
		commit(t, e.conn, chroot, g, "t", 0, 4)
	}
	cc := e.clusterConfig("c", chroot)
	cc.Groups.Deny = []string{"console-consumer-[0-9]+"}
	cc.MaxGroups = 3
	logs := &testwait.Log{}
	r := startMonitor(t, testConfig(100*time.Millisecond, 3, cc), logs.Logger(slog.LevelInfo))
	groups := func(want string) func() bool {
		return func() bool { return r.body(t, "/delay") == want }
	}
	testwait.Eventually(t, 10*time.Second, "a, b and c monitored", groups(`{"c":{"a":{"0":6},"b":{"0":6},"c":{"0":6}}}`))
	metrics := scrape(t, r)
	for _, want := range []string{
		`kmonitor_groups{cluster="c",state="tracked"} 3`,
		`kmonitor_groups{cluster="c",state="filtered"} 1`,
		`kmonitor_groups{cluster="c",state="over_cap"} 1`,
	} {
		if !strings.Contains(metrics, "\n"+want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if got := strings.Count(logs.String(), "max_groups reached"); got != 1 {
		t.Errorf("got %d warnings about max_groups, want 1:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "not_monitored=1") {
		t.Errorf("the warning lacks its level or count:\n%s", logs.String())
	}

	testcluster.RemoveTree(t, e.conn, chroot+"/consumers/b")
	testwait.Eventually(t, 10*time.Second, "d takes b's place", groups(`{"c":{"a":{"0":6},"c":{"0":6},"d":{"0":6}}}`))
	testwait.Eventually(t, 5*time.Second, "the warning ends", func() bool {
		return strings.Contains(logs.String(), "every allowed consumer group is monitored again")
	})
	commit(t, e.conn, chroot, "0-new", "t", 0, 4)
	testwait.Eventually(t, 10*time.Second, "the new group over the cap", func() bool {
		return strings.Contains(scrape(t, r), "\n"+`kmonitor_groups{cluster="c",state="over_cap"} 1`+"\n")
	})
	if got := r.body(t, "/delay"); got != `{"c":{"a":{"0":6},"c":{"0":6},"d":{"0":6}}}` {
		t.Errorf("after a new group over the cap: got %s, want a, c and d still", got)
	}
}

// TestPartitionsWithoutOffsetNode: a module that registered (ids/) but has not
// written offsets for every partition of its topic shows all of them in /lag
// (no commit, STOP once the status window passed) and in Zabbix discovery;
// /delay keeps listing only the partitions with a committed offset.
func TestPartitionsWithoutOffsetNode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 3)
	for p := int32(0); p < 3; p++ {
		e.produce(t, "t", p, 5, time.Time{})
	}
	l := zkconsumers.New(chroot)
	reg := zkconsumers.NewRegistration("t", time.Now()).Encode()
	ensure(t, e.conn, l.ID("fresh", "host-1"), reg)
	ensure(t, e.conn, l.ID("mixed", "host-2"), reg)
	commit(t, e.conn, chroot, "mixed", "t", 0, 1)
	ensure(t, e.conn, l.ID("pattern", "host-3"), []byte(`{"version":1,"subscription":{"t":1},"pattern":"white_list"}`))
	r := start(t, testConfig(100*time.Millisecond, 3, e.clusterConfig("c", chroot)))

	testwait.Eventually(t, 10*time.Second, "every partition of the registered topic is a row, STOP without commit", func() bool {
		rows := r.lag(t, "")
		if len(rows) != 6 {
			return false
		}
		for _, row := range rows {
			if row.Module == "mixed" && row.Partition == 0 {
				if row.NoCommit || row.Lag != 4 {
					return false
				}
				continue
			}
			if !row.NoCommit || row.Committed != nil || row.Lag != 0 || row.Owner != "" || row.LogEnd == nil || row.Status != StatusStop {
				return false
			}
		}
		return true
	})
	if got, want := r.body(t, "/delay"), `{"c":{"mixed":{"0":4}}}`; got != want {
		t.Errorf("/delay: got %s, want %s", got, want)
	}
	if got, want := r.body(t, "/delay?format=zabbix"), "- c.mixed.0.delay 4\n"; got != want {
		t.Errorf("zabbix: got %q, want %q", got, want)
	}
	var items []string
	for _, mod := range []string{"fresh", "mixed"} {
		for p := range 3 {
			items = append(items, fmt.Sprintf(`{"{#CLUSTER}":"c","{#MODULE}":"%s","{#TOPIC}":"t","{#PARTITION}":"%d"}`, mod, p))
		}
	}
	if got, want := r.body(t, "/delay?format=zabbix_discovery"), `{"data":[`+strings.Join(items, ",")+`]}`; got != want {
		t.Errorf("discovery:\ngot  %s\nwant %s", got, want)
	}

	// The registration goes (the instance stopped): so do its rows.
	testcluster.RemoveTree(t, e.conn, l.IDs("fresh"))
	testwait.Eventually(t, 10*time.Second, "fresh's rows gone", func() bool {
		for _, row := range r.lag(t, "") {
			if row.Module == "fresh" {
				return false
			}
		}
		return true
	})
}
