package testcluster

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
)

// devBrokerPackage is the command StartDevBroker builds.
const devBrokerPackage = "github.com/kafka-http-wrapper/kafka-http-wrapper/scripts/devbroker"

// DevBrokerAnnounce starts the line devbroker prints once it accepts
// connections, followed by its address.
const DevBrokerAnnounce = "devbroker listening on "

// StartDevBroker builds scripts/devbroker and runs it as a child process with
// args, for tests and benchmarks that need Kafka in a process of its own (so
// that its CPU time and memory can be read apart from the test's). It listens
// on a free port of 127.0.0.1 unless args contain -listen (the last -listen
// wins). StartDevBroker waits until the broker announces its address and
// returns that address (host:port, comma-separated with -brokers above 1)
// and the process.
//
// When the test ends the broker is stopped, also when the test fails:
// SIGTERM, then SIGKILL if it has not exited after 10 s. On Linux the kernel
// kills it should the test binary die without cleaning up. Its output is
// included in failure messages. It fails the test when the go command is
// missing, the build fails or the broker does not announce itself within 30 s.
func StartDevBroker(tb testing.TB, args ...string) (addr string, p *testproc.Proc) {
	tb.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		tb.Fatalf("testcluster: devbroker: find the go command: %v", err)
	}
	bin := filepath.Join(tb.TempDir(), "devbroker")
	if out, err := exec.Command(gobin, "build", "-o", bin, devBrokerPackage).CombinedOutput(); err != nil {
		tb.Fatalf("testcluster: go build %s: %v\n%s", devBrokerPackage, err, out)
	}
	p = testproc.StartWith(tb, testproc.Options{Name: "devbroker", StopGrace: stopGrace}, bin,
		append([]string{"-listen", "127.0.0.1:0"}, args...)...)
	return p.Announced(tb, DevBrokerAnnounce, startTimeout), p
}
