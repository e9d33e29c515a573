package monitor

import (
	"strconv"
	"testing"
	"time"
)

func TestAnswerCache(t *testing.T) {
	var c answerCache
	renders := 0
	render := func() (string, []byte) {
		renders++
		return "text/plain", []byte{byte('0' + renders)}
	}
	now := time.Unix(1000, 0)
	records := delayQuery{format: "json", clusters: []string{"a"}}
	steps := []struct {
		q       delayQuery
		token   string
		after   time.Duration
		renders int
	}{
		{records, "1.1.true;", 0, 1},
		{records, "1.1.true;", time.Hour, 1},                                        // same state: reused however old
		{records, "2.1.true;", 0, 2},                                                // a ZooKeeper change
		{records, "2.1.false;", 0, 3},                                               // the session went away: stale marks change
		{delayQuery{format: "zabbix", clusters: []string{"a"}}, "2.1.false;", 0, 4}, // another format
		{delayQuery{format: "json", seconds: true, clusters: []string{"a"}}, "2.1.false;", 0, 5},
		{delayQuery{format: "json", seconds: true, clusters: []string{"a"}}, "2.1.false;", 100 * time.Millisecond, 5},
		{delayQuery{format: "json", seconds: true, clusters: []string{"a"}}, "2.1.false;", 300 * time.Millisecond, 6}, // time lags age
	}
	for i, s := range steps {
		now = now.Add(s.after)
		key := s.q.format + "|" + strconv.FormatBool(s.q.seconds)
		var maxAge time.Duration
		if s.q.seconds {
			maxAge = secondsMaxAge
		}
		_, body := c.get(key, s.q.clusters, s.token, maxAge, now, render)
		if renders != s.renders {
			t.Fatalf("step %d: got %d renders, want %d", i, renders, s.renders)
		}
		if want := byte('0' + renders); body[0] != want {
			t.Fatalf("step %d: got body %q, want the latest render %q", i, body, want)
		}
	}
	// A poll of cluster a drops its answers; the next request renders.
	c.drop("b")
	if c.get("json|true", []string{"a"}, "2.1.false;", secondsMaxAge, now, render); renders != 6 {
		t.Fatalf("after another cluster's poll: got %d renders, want 6", renders)
	}
	c.drop("a")
	if c.get("json|true", []string{"a"}, "2.1.false;", secondsMaxAge, now, render); renders != 7 {
		t.Fatalf("after the cluster's poll: got %d renders, want 7", renders)
	}
}
