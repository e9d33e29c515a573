package testcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconn"
)

// ZooKeeperJar is the server jar that Debian's zookeeper package installs.
// Its manifest lists the jars it needs, so it is the whole server classpath.
const ZooKeeperJar = "/usr/share/java/zookeeper.jar"

// slf4jSimpleJar gives the server's slf4j logging a backend that writes to
// stderr, which StartZooKeeper sends to a file. Without it the server logs
// nothing, and a failed start is hard to explain.
const slf4jSimpleJar = "/usr/share/java/slf4j-simple.jar"

// DefaultSessionTimeout is the session timeout of clients made by
// [ZooKeeper.Conn]. The server accepts session timeouts from 1 s to 60 s.
const DefaultSessionTimeout = 4 * time.Second

const (
	startTimeout   = 30 * time.Second // JVM start until the server answers
	stopGrace      = 10 * time.Second // SIGTERM until SIGKILL in Stop
	connectTimeout = 10 * time.Second // Conn until the session is established
	freePortTries  = 3                // fresh ports tried when one was taken meanwhile
	logTailBytes   = 4 << 10
)

const installHint = "run `make test` (which installs it) or `apt-get install -y zookeeper`"

// ZooKeeper is a standalone ZooKeeper server run from Debian's package as a
// child process of the test binary, listening on 127.0.0.1 only.
//
// Its methods are safe for concurrent use; Stop, Kill and Start hold a lock
// for their whole run, so they happen one after another.
type ZooKeeper struct {
	// Addr is the client address, 127.0.0.1:port. It stays the same across
	// Stop/Kill and Start.
	Addr string
	// Dir holds zoo.cfg, the server's data (data/) and its output
	// (zookeeper.log). It is removed when the test ends.
	Dir string

	java    string
	cfgPath string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd     // nil when not running
	done chan struct{} // closed once cmd has been waited for
}

// StartZooKeeper starts a ZooKeeper server on a free port of 127.0.0.1 with
// an empty data directory in t.TempDir and waits until it serves requests.
//
// The server runs with tickTime=500, so sessions can be as short as 1 s, and
// without fsync (data survives the process being killed, not the machine
// crashing). When the test ends the server is killed and waited for, also when
// the test fails. StartZooKeeper fails the test when java or the ZooKeeper jar
// is missing or the server does not come up within 30 s; the failure message
// includes the end of the server's log.
func StartZooKeeper(t testing.TB) *ZooKeeper {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		t.Fatalf("testcluster: ZooKeeper needs java, which is not on PATH (%v); %s", err, installHint)
	}
	if _, err := os.Stat(ZooKeeperJar); err != nil {
		t.Fatalf("testcluster: ZooKeeper server jar missing (%v); %s", err, installHint)
	}

	// TempDir's removal is registered before the kill below, so it runs
	// after the process is gone.
	dir := t.TempDir()
	z := &ZooKeeper{
		Dir:     dir,
		java:    java,
		cfgPath: filepath.Join(dir, "zoo.cfg"),
		logPath: filepath.Join(dir, "zookeeper.log"),
	}
	t.Cleanup(z.Kill)

	z.mu.Lock()
	defer z.mu.Unlock()
	for try := 1; ; try++ {
		port := testproc.FreePort(t)
		z.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		_ = os.Remove(z.logPath) // keep only this attempt's output for the checks below
		if err := z.writeConfig(port); err != nil {
			t.Fatalf("testcluster: %v", err)
		}
		err := z.start()
		if err == nil {
			return z
		}
		// Another process may have taken the port between freePort and
		// the server's bind; a new port fixes that, nothing else does.
		if try < freePortTries && strings.Contains(z.logTail(), "Address already in use") {
			t.Logf("testcluster: ZooKeeper port %d was taken, trying another", port)
			continue
		}
		t.Fatalf("testcluster: %v\n--- %s (end) ---\n%s", err, z.logPath, z.logTail())
	}
}

// Start starts the server again after Stop or Kill, on the same port and
// with the same data, and waits until it serves requests. It fails the test
// when the server is already running or does not come up.
func (z *ZooKeeper) Start(t testing.TB) {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.cmd != nil {
		t.Fatalf("testcluster: ZooKeeper on %s is already running (pid %d)", z.Addr, z.cmd.Process.Pid)
	}
	if err := z.start(); err != nil {
		t.Fatalf("testcluster: %v\n--- %s (end) ---\n%s", err, z.logPath, z.logTail())
	}
}

// Stop shuts the server down gracefully: SIGTERM, then SIGKILL if it has not
// exited after 10 s. It returns once the process is gone. Stopping a server
// that is not running does nothing.
func (z *ZooKeeper) Stop() {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.cmd == nil {
		return
	}
	signalGroup(z.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-z.done:
	case <-time.After(stopGrace):
		signalGroup(z.cmd.Process.Pid, syscall.SIGKILL)
		<-z.done
	}
	z.cmd = nil
}

// Kill ends the server at once with SIGKILL, as a crash would, and returns
// once the process is gone. Killing a server that is not running does nothing.
func (z *ZooKeeper) Kill() {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.cmd == nil {
		return
	}
	signalGroup(z.cmd.Process.Pid, syscall.SIGKILL)
	<-z.done
	z.cmd = nil
}

// PID returns the process ID of the running server, or 0 when it is stopped.
func (z *ZooKeeper) PID() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.cmd == nil {
		return 0
	}
	return z.cmd.Process.Pid
}

// Conn returns a client connected to the server with a session of
// [DefaultSessionTimeout]. It waits up to 10 s for the session and fails
// the test otherwise. The client is closed when the test ends; its log lines
// go to t.Logf until then.
func (z *ZooKeeper) Conn(t testing.TB) *zk.Conn {
	t.Helper()
	return z.ConnTimeout(t, DefaultSessionTimeout)
}

// ConnTimeout is like [ZooKeeper.Conn] with the given session timeout; the
// server grants between 1 s and 60 s.
func (z *ZooKeeper) ConnTimeout(t testing.TB, sessionTimeout time.Duration) *zk.Conn {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testwait.LogTo(t), &slog.HandlerOptions{Level: slog.LevelDebug})).With("zk_client", z.Addr)
	conn, err := zkconn.Connect([]string{z.Addr}, zkconn.Options{SessionTimeout: sessionTimeout, Log: log})
	if err != nil {
		t.Fatalf("testcluster: %v", err)
	}
	t.Cleanup(conn.Close)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := conn.WaitSession(ctx); err != nil {
		t.Fatalf("testcluster: ZooKeeper %s: %v", z.Addr, err)
	}
	return conn.Conn
}

// start launches the server process and waits until it serves. z.mu is held.
func (z *ZooKeeper) start() error {
	logFile, err := os.OpenFile(z.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open ZooKeeper log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	fmt.Fprintf(logFile, "=== testcluster: starting ZooKeeper on %s at %s\n", z.Addr, time.Now().Format(time.RFC3339Nano))

	classpath := ZooKeeperJar
	if _, err := os.Stat(slf4jSimpleJar); err == nil {
		classpath += string(os.PathListSeparator) + slf4jSimpleJar
	}
	cmd := exec.Command(z.java,
		// A small, quickly started JVM: tests start many of these.
		"-Xms16m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-XX:-UsePerfData", "-Djava.net.preferIPv4Stack=true",
		"-Dorg.slf4j.simpleLogger.showDateTime=true",
		"-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
		"-Dzookeeper.jmx.log4j.disable=true",
		"-cp", classpath,
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", z.cfgPath)
	cmd.Dir = z.Dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ZooKeeper: %w", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	z.cmd, z.done = cmd, done

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := waitServing(ctx, z.Addr, done); err != nil {
		signalGroup(cmd.Process.Pid, syscall.SIGKILL)
		<-done
		z.cmd = nil
		if waitErr != nil {
			return fmt.Errorf("ZooKeeper on %s (pid %d): %w (process: %v)", z.Addr, cmd.Process.Pid, err, waitErr)
		}
		return fmt.Errorf("ZooKeeper on %s (pid %d): %w", z.Addr, cmd.Process.Pid, err)
	}
	return nil
}

// waitServing polls addr until the server answers ruok with imok and reports
// its mode (so it serves requests, not only accepts connections), the
// process exits, or ctx ends.
func waitServing(ctx context.Context, addr string, exited <-chan struct{}) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := serving(addr)
		if ok {
			return nil
		}
		last = err
		select {
		case <-exited:
			return errors.New("server process exited before serving")
		case <-ctx.Done():
			return fmt.Errorf("not serving after %v: %w", startTimeout, last)
		case <-tick.C:
		}
	}
}

func serving(addr string) (bool, error) {
	got, err := fourLetterWord(addr, "ruok")
	if err != nil {
		return false, err
	}
	if got != "imok" {
		return false, fmt.Errorf("ruok: got %q, want %q", got, "imok")
	}
	got, err = fourLetterWord(addr, "srvr")
	if err != nil {
		return false, err
	}
	if !strings.Contains(got, "Mode: ") {
		return false, fmt.Errorf("srvr: got %q, want a Mode line", got)
	}
	return true, nil
}

// fourLetterWord sends one of ZooKeeper's four-letter commands and returns
// the whole answer.
func fourLetterWord(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	return string(b), nil
}

func (z *ZooKeeper) writeConfig(port int) error {
	cfg := fmt.Sprintf(`# written by testcluster.StartZooKeeper
tickTime=500
initLimit=10
syncLimit=5
minSessionTimeout=1000
maxSessionTimeout=60000
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
standaloneEnabled=true
reconfigEnabled=false
autopurge.purgeInterval=0
# writes reach the OS but are not fsynced: fast, and they survive SIGKILL
forceSync=no
# preallocate the transaction log in 64 KiB steps instead of 64 MiB
preAllocSize=64
`, filepath.Join(z.Dir, "data"), port)
	if err := os.WriteFile(z.cfgPath, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("write ZooKeeper config: %w", err)
	}
	return nil
}

// logTail returns the end of the server's log file.
func (z *ZooKeeper) logTail() string {
	f, err := os.Open(z.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > logTailBytes {
		if _, err := f.Seek(-logTailBytes, io.SeekEnd); err != nil {
			return fmt.Sprintf("(read log: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	return string(b)
}

// signalGroup signals the process group led by pid, which is the server's
// JVM: it is started as the leader of its own group.
func signalGroup(pid int, sig syscall.Signal) {
	// ESRCH only means the process is already gone, which is the goal.
	_ = syscall.Kill(-pid, sig)
}
