package loadgen

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
)

func TestRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skipf("no procfs: %v", err)
	}
	ballast := make([]byte, 32<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	cur, err := CurrentRSS(os.Getpid())
	if err != nil {
		t.Fatalf("CurrentRSS: %v", err)
	}
	peak, err := PeakRSS(0)
	if err != nil {
		t.Fatalf("PeakRSS: %v", err)
	}
	if cur < int64(len(ballast)) {
		t.Errorf("CurrentRSS = %d, want >= %d after touching the ballast", cur, len(ballast))
	}
	if peak < cur {
		t.Errorf("PeakRSS = %d, want >= CurrentRSS %d", peak, cur)
	}
	_ = ballast[len(ballast)-1]
}

func TestRSSOfChild(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skipf("no sleep binary: %v", err)
	}
	p := testproc.Start(t, sleep, "30")
	peak, err := PeakRSS(p.PID())
	if err != nil {
		t.Fatalf("PeakRSS(%d): %v", p.PID(), err)
	}
	if peak <= 0 {
		t.Errorf("PeakRSS(child) = %d, want > 0", peak)
	}
}

func TestParseStatusField(t *testing.T) {
	const status = "Name:\tx\nVmHWM:\t    2048 kB\nVmRSS:\t  1024 kB\nVmBad:\t12\n"
	tests := []struct {
		field   string
		want    int64
		wantErr error
	}{
		{"VmHWM", 2048 * 1024, nil},
		{"VmRSS", 1024 * 1024, nil},
		{"VmSwap", 0, ErrNoField},
		{"VmBad", 0, errors.New("any")},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			got, err := parseStatusField([]byte(status), tt.field, "status")
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tt.wantErr != nil && err == nil:
				t.Fatalf("got %d, want an error", got)
			case errors.Is(tt.wantErr, ErrNoField) && !errors.Is(err, ErrNoField):
				t.Fatalf("got error %v, want %v", err, ErrNoField)
			}
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
	if _, err := PeakRSS(1 << 30); err == nil {
		t.Errorf("PeakRSS of a process that does not exist: got no error, want one")
	}
}

func TestCPUTime(t *testing.T) {
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	for _, pid := range []int{0, os.Getpid()} {
		got, err := CPUTime(pid)
		if err != nil {
			t.Fatal(err)
		}
		if got < 100*time.Millisecond {
			t.Errorf("pid %d: got %s of CPU time after spinning 200 ms, want at least 100ms", pid, got)
		}
	}
	if _, err := CPUTime(1 << 30); err == nil {
		t.Error("CPUTime of no process: got no error, want one")
	}
}
