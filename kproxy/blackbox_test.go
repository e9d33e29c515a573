package main

// Black-box tests: build the kproxy binary, run it from a configuration in the
// original format and drive it as a user would (HTTP, signals), reading back what it
// wrote with kcat, an independent Kafka client.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy/testpki"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/partition"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
)

func TestMain(m *testing.M) { os.Exit(testproc.Main(m)) }

// bbOriginalConfig rewrites the original kproxy.yaml for this test: same keys,
// loopback addresses, a free port and a temporary log directory; extra lines
// (new keys) are appended.
func bbOriginalConfig(t *testing.T, brokers []string, extra string) (path string, port int, logDir string) {
	t.Helper()
	raw, err := os.ReadFile("../testdata/original/kproxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	port = testproc.FreePort(t)
	dir := t.TempDir()
	logDir = filepath.Join(dir, "log")
	var out []string
	skipList := false
	for _, line := range strings.Split(string(raw), "\n") {
		switch {
		case strings.HasPrefix(line, "port:"):
			line = "port: " + strconv.Itoa(port)
		case strings.HasPrefix(line, "log_dir:"):
			line = "log_dir: " + logDir
		case strings.HasPrefix(line, "read_timeout_ms:"), strings.HasPrefix(line, "write_timeout_ms:"):
			// The original's 100 ms is kept as a key; -race builds are slow enough
			// that a longer value avoids flaky cut-offs.
			name, _, _ := strings.Cut(line, ":")
			line = name + ": 2000"
		case strings.HasPrefix(line, "broker_hosts:"):
			out = append(out, line)
			for _, b := range brokers {
				out = append(out, " - "+b)
			}
			skipList = true
			continue
		case skipList && strings.HasPrefix(line, " - "):
			continue
		}
		skipList = false
		out = append(out, line)
	}
	path = filepath.Join(dir, "kproxy.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, port, logDir
}

// bbProc is a kproxy process of a black-box test; its Logs include
// kproxy.log.
type bbProc struct {
	*testproc.Proc
	url string
}

// bbStart runs kproxy -f cfg and waits for /readyz; the process is killed when the
// test ends if it is still running.
func bbStart(t *testing.T, cfg string, port int, logDir string) *bbProc {
	t.Helper()
	return bbStartWith(t, cfg, fmt.Sprintf("http://127.0.0.1:%d", port), logDir, http.DefaultClient)
}

// bbStartWith is bbStart for a kproxy at base (http:// or https://) that client
// can reach.
func bbStartWith(t *testing.T, cfg, base, logDir string, client *http.Client) *bbProc {
	t.Helper()
	p := &bbProc{url: base}
	p.Proc = testproc.StartWith(t, testproc.Options{Name: "kproxy", LogFile: filepath.Join(logDir, "kproxy.log")}, testproc.Build(t, "."), "-f", cfg)
	testproc.Await(t, 20*time.Second, "/readyz 200", func() bool {
		resp, err := client.Get(p.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, p.Proc)
	return p
}

// stop sends sig and waits for the exit code.
func (p *bbProc) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	if err := p.Signal(sig); err != nil {
		t.Fatal(err)
	}
	code := p.Wait(40 * time.Second)
	if code == -1 {
		t.Fatalf("kproxy did not exit after %s\n%s", sig, p.Logs())
	}
	return code
}

type kcatRecord struct {
	partition int32
	offset    int64
	key       string
	value     []byte
	headers   string // kcat's %h: name=value pairs separated by commas
}

// kcatRead reads every record of topic with kcat. The format gives the key's
// and the value's lengths before them, so binary keys and values are read back
// byte for byte; headers come as kcat prints them (%h).
func kcatRead(t *testing.T, broker, topic string, want int) []kcatRecord {
	t.Helper()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed: run `make test` (it installs it) or `apt-get install -y kcat`")
	}
	cmd := exec.Command(kcat, "-b", broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-c", strconv.Itoa(want),
		"-f", "%p %o %K %k %S %h\n%s\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, stderr.String())
	}
	r := bufio.NewReader(bytes.NewReader(out))
	var recs []kcatRecord
	for {
		var rec kcatRecord
		var keyLen, valLen int
		if _, err := fmt.Fscanf(r, "%d %d %d ", &rec.partition, &rec.offset, &keyLen); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			t.Fatalf("kcat output: %v", err)
		}
		// kcat prints -1 and no key for a record without one; the format's
		// space after it was read with the length.
		var key []byte
		lenFormat := "%d"
		if keyLen >= 0 {
			key, lenFormat = make([]byte, keyLen), " %d"
			if _, err := io.ReadFull(r, key); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := fmt.Fscanf(r, lenFormat, &valLen); err != nil {
			t.Fatalf("kcat output: %v", err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("kcat output: %v", err)
		}
		rec.headers = strings.TrimSuffix(strings.TrimPrefix(line, " "), "\n")
		rec.key, rec.value = string(key), make([]byte, valLen)
		if _, err := io.ReadFull(r, rec.value); err != nil {
			t.Fatal(err)
		}
		if b, _ := r.ReadByte(); b != '\n' {
			t.Fatalf("kcat output: no newline after value")
		}
		recs = append(recs, rec)
	}
	return recs
}

// TestOriginalConfigRoundTripThroughKcat runs the binary from the original file
// for each partitioner, posts records and reads them back with kcat.
func TestOriginalConfigRoundTripThroughKcat(t *testing.T) {
	const parts = 8
	for _, name := range partition.Names() {
		t.Run(name, func(t *testing.T) {
			topic := "bb-" + name
			c := testcluster.Kafka(t, kfake.SeedTopics(parts, topic))
			brokers := testcluster.Brokers(c)
			extra := ""
			if name != partition.NameSarama {
				extra = "partitioner: " + name + "\n"
			}
			cfg, port, logDir := bbOriginalConfig(t, brokers, extra)
			p := bbStart(t, cfg, port, logDir)
			hash, _ := partition.Lookup(name)

			sent := map[string][]byte{}
			for i := 0; i < 40; i++ {
				key := fmt.Sprintf("user-%03d", i)
				val, err := msgpack.Marshal(map[string]any{"topic": topic, "method": "TestReply", "key": key, "data": []byte{0, 1, 2, byte(i), '\n', 0xff}})
				if err != nil {
					t.Fatal(err)
				}
				acks := []string{"1", "-1", "0"}[i%3]
				resp, err := http.Post(fmt.Sprintf("%s/commit?topic=%s&key=%s&acks=%s", p.url, topic, key, acks), "application/x-msgpack", bytes.NewReader(val))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("commit %s: got %d %s", key, resp.StatusCode, body)
				}
				sent[key] = val
			}
			recs := kcatRead(t, brokers[0], topic, len(sent))
			if len(recs) != len(sent) {
				t.Fatalf("kcat read %d records, want %d", len(recs), len(sent))
			}
			for _, rec := range recs {
				val, ok := sent[rec.key]
				if !ok {
					t.Fatalf("kcat returned unexpected key %q", rec.key)
				}
				if !bytes.Equal(rec.value, val) {
					t.Errorf("key %s: value bytes differ: got %x, want %x", rec.key, rec.value, val)
				}
				if want := hash([]byte(rec.key), parts); rec.partition != want {
					t.Errorf("key %s: in partition %d, %s gives %d", rec.key, rec.partition, name, want)
				}
				delete(sent, rec.key)
			}
			if code := p.stop(t, syscall.SIGTERM); code != 0 {
				t.Errorf("exit code after SIGTERM: got %d, want 0\n%s", code, p.Logs())
			}
			if !strings.Contains(p.Logs(), "drained") {
				t.Errorf("log lacks the drain line:\n%s", p.Logs())
			}
		})
	}
}

func TestSighupReopensLog(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, "bb"))
	cfg, port, logDir := bbOriginalConfig(t, testcluster.Brokers(c), "")
	p := bbStart(t, cfg, port, logDir)
	logFile := filepath.Join(logDir, "kproxy.log")
	rotated := logFile + ".1"
	if err := os.Rename(logFile, rotated); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testproc.Await(t, 10*time.Second, "a new kproxy.log with the reopen line after SIGHUP", func() bool {
		b, err := os.ReadFile(logFile)
		return err == nil && strings.Contains(string(b), "log file reopened")
	}, p.Proc)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code: got %d, want 0", code)
	}
	old, _ := os.ReadFile(rotated)
	if !strings.Contains(string(old), "started") {
		t.Errorf("rotated file lacks the start line: %s", old)
	}
}

func TestCheckFlag(t *testing.T) {
	bin := testproc.Build(t, ".")
	out, err := exec.Command(bin, "-t", "-f", "../testdata/original/kproxy.yaml").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "configuration ../testdata/original/kproxy.yaml is valid" {
		t.Errorf("original file: got %v %q", err, out)
	}
	out, err = exec.Command(bin, "-t", "--config", "../conf/kproxy.yaml").CombinedOutput()
	if err != nil {
		t.Errorf("conf/kproxy.yaml: got %v %q", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("port: 70000\nbroker_hosts: [127.0.0.1:9092]\nprot: 1\n"), 0o644)
	cmd := exec.Command(bin, "-t", "-f", bad)
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "bad.yaml: port: 70000 is not in 1..65535") ||
		!strings.Contains(string(out), "bad.yaml: prot: unknown key") {
		t.Errorf("bad file: got exit %d and %q", cmd.ProcessState.ExitCode(), out)
	}
	out, err = exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "kproxy ") {
		t.Errorf("--version: got %v %q", err, out)
	}
	cmd = exec.Command(bin)
	cmd.Run()
	if cmd.ProcessState.ExitCode() != 2 {
		t.Errorf("no arguments: got exit %d, want 2", cmd.ProcessState.ExitCode())
	}
}

// TestHTTPSWithClientCertificates runs the binary with the tls section: a client
// with a certificate of the client CA writes a record (read back with kcat), one
// without is refused, plain HTTP gets nowhere, the operations endpoints answer
// on ops_listen over plain HTTP without a certificate, and SIGHUP serves a
// renewed certificate without a restart.
func TestHTTPSWithClientCertificates(t *testing.T) {
	const topic = "bb-tls"
	ca := testpki.NewCA(t, "bb")
	server := ca.Server(t, "kproxy")
	clientCA := testpki.NewCA(t, "bb-clients")
	client := clientCA.Client(t, "service")
	c := testcluster.Kafka(t, kfake.SeedTopics(1, topic))
	brokers := testcluster.Brokers(c)
	opsAddr := fmt.Sprintf("127.0.0.1:%d", testproc.FreePort(t))
	cfg, port, logDir := bbOriginalConfig(t, brokers, fmt.Sprintf(
		"tls:\n  cert_file: %s\n  key_file: %s\n  client_ca_file: %s\n  min_version: \"1.2\"\nops_listen: %s\npprof: true\n",
		server.CertFile, server.KeyFile, clientCA.CertFile, opsAddr))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	httpsClient := func(certs ...tls.Certificate) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: certs}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	withCert := httpsClient(client.TLS)
	p := bbStartWith(t, cfg, "https://"+addr, logDir, withCert)

	val, err := msgpack.Marshal(map[string]any{"method": "TestReply", "data": "over mutual TLS"})
	if err != nil {
		t.Fatal(err)
	}
	commitURL := p.url + "/commit?topic=" + topic + "&key=k1"
	resp, err := withCert.Post(commitURL, "application/x-msgpack", bytes.NewReader(val))
	if err != nil {
		t.Fatalf("POST with a client certificate: %v\n%s", err, p.Logs())
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST with a client certificate: got %d %s, want 200", resp.StatusCode, answer)
	}

	if resp, err := httpsClient().Post(commitURL, "application/x-msgpack", bytes.NewReader(val)); err == nil {
		resp.Body.Close()
		t.Errorf("POST without a client certificate: got %d, want the handshake refused", resp.StatusCode)
	}
	if resp, err := http.Post("http://"+addr+"/commit?topic="+topic, "application/x-msgpack", bytes.NewReader(val)); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the HTTPS port: got %d, want 400 or a failed request", resp.StatusCode)
		}
	}
	if curl, err := exec.LookPath("curl"); err == nil {
		cmd := exec.Command(curl, "-sS", "--fail-with-body", "--cacert", ca.CertFile,
			"--cert", client.CertFile, "--key", client.KeyFile,
			"-H", "Content-Type: application/x-msgpack", "--data-binary", "@-", commitURL)
		cmd.Stdin = bytes.NewReader(val)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"topic":"bb-tls"`) {
			t.Errorf("curl with a client certificate: got %v %s, want 200 with the topic", err, out)
		}
	}

	recs := kcatRead(t, brokers[0], topic, 1)
	if len(recs) < 1 || !bytes.Equal(recs[0].value, val) || recs[0].key != "k1" {
		t.Fatalf("kcat: got %+v, want the record posted over TLS", recs)
	}

	// Probes and Prometheus need no client certificate on ops_listen.
	for _, path := range []string{"/readyz", "/metrics", "/debug/pprof/cmdline"} {
		resp, err := http.Get("http://" + opsAddr + path)
		if err != nil {
			t.Fatalf("ops_listen %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("ops_listen %s: got %d, want 200", path, resp.StatusCode)
		}
		if path == "/metrics" && !strings.Contains(string(body), `kproxy_requests_total{code="ok",status="200"} `) {
			t.Errorf("ops_listen /metrics lacks the commit:\n%s", body)
		}
	}

	// Renew the certificate in place and signal: new connections get it.
	renewed := ca.Server(t, "kproxy")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	served := func() *tls.Conn {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client.TLS}})
		if err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		return conn
	}
	testproc.Await(t, 10*time.Second, fmt.Sprintf("the renewed certificate (serial %v) served after SIGHUP", renewed.Serial), func() bool {
		conn := served()
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(renewed.Serial) == 0
	}, p.Proc)
	if !strings.Contains(p.Logs(), "TLS files reloaded") {
		t.Errorf("log lacks the reload line:\n%s", p.Logs())
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0\n%s", code, p.Logs())
	}
}
