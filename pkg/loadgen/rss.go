package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// PeakRSS returns the peak resident set size (VmHWM in /proc/PID/status) of
// process pid in bytes; pid <= 0 means the calling process. Linux only.
func PeakRSS(pid int) (int64, error) {
	return procStatusBytes(pid, "VmHWM")
}

// CurrentRSS returns the current resident set size (VmRSS in
// /proc/PID/status) of process pid in bytes; pid <= 0 means the calling
// process. Linux only.
func CurrentRSS(pid int) (int64, error) {
	return procStatusBytes(pid, "VmRSS")
}

func procStatusBytes(pid int, field string) (int64, error) {
	path := "/proc/self/status"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("loadgen: read %s: %w", path, err)
	}
	return parseStatusField(data, field, path)
}

// parseStatusField finds "field:   123 kB" in a /proc status file and
// returns it in bytes.
func parseStatusField(data []byte, field, path string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, value, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || string(name) != field {
			continue
		}
		f := bytes.Fields(value)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("loadgen: %s: %s: unexpected value %q", path, field, value)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("loadgen: %s: %s: %w", path, field, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("%w: %s in %s", ErrNoField, field, path)
}

// CPUTime returns the user plus system CPU time of every thread of process pid so
// far, from /proc/PID/stat; pid <= 0 means the calling process. The kernel counts
// in USER_HZ ticks, 1/100 s on every Linux architecture Go supports. Linux only.
func CPUTime(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("loadgen: read %s: %w", path, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces; state
	// (field 3) follows the last ')'; utime and stime are fields 14 and 15.
	var f [][]byte
	if i := bytes.LastIndexByte(data, ')'); i >= 0 {
		f = bytes.Fields(data[i+1:])
	}
	if len(f) < 13 {
		return 0, fmt.Errorf("loadgen: %s: got %d fields after the command name, want at least 13", path, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("loadgen: %s: %w", path, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100), nil
}
