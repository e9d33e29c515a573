package main

// Black-box test: the kmonitor binary runs from the original configuration file
// (addresses replaced by loopback ones), finds the brokers in ZooKeeper as the
// original did, and serves /delay in the original shapes; zabbix_sender reads the
// zabbix output and sends it to a test trapper that checks what arrives.

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// mkdirs creates path and its parents as persistent nodes.
func mkdirs(t *testing.T, conn *zk.Conn, path string, data []byte) {
	t.Helper()
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i := range parts {
		p := "/" + strings.Join(parts[:i+1], "/")
		var d []byte
		if i == len(parts)-1 {
			d = data
		}
		if _, err := conn.Create(p, d, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatalf("create %s: %v", p, err)
		}
	}
}

// originalConfig rewrites the original kmonitor.yaml: loopback ZooKeeper (one
// entry per list), a free port, a temporary log_dir; base.poll_interval_ms is the
// one new key, so the test need not wait 5 s per poll.
func originalConfig(t *testing.T, zkAddr string, port int) string {
	t.Helper()
	raw, err := os.ReadFile("../testdata/original/kmonitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	host := regexp.MustCompile(`^  - 10\.`)
	var out []string
	firstHost := false
	for _, line := range strings.Split(string(raw), "\n") {
		switch {
		case strings.HasPrefix(line, " zk_hosts:"):
			firstHost = true
		case host.MatchString(line):
			if !firstHost {
				continue
			}
			firstHost = false
			line = "  - " + zkAddr
		case strings.HasPrefix(line, " port:"):
			line = fmt.Sprintf(" port: %d", port)
		case strings.HasPrefix(line, " log_dir:"):
			line = " log_dir: " + filepath.Join(t.TempDir(), "log")
		case strings.HasPrefix(line, " clusters:"):
			out = append(out, " poll_interval_ms: 300")
		}
		out = append(out, line)
	}
	path := filepath.Join(t.TempDir(), "kmonitor.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startOriginal runs kmonitor from the original kmonitor.yaml against a real
// ZooKeeper and kfake in the state of the original README's example: on
// test_cluster, test_module_1 is 12 records behind and test_module_2 is done.
func startOriginal(t *testing.T) (base string, p *testproc.Proc) {
	t.Helper()
	base, p, _ = startOriginalFile(t)
	return base, p
}

// startOriginalFile is startOriginal that also returns the configuration file.
func startOriginalFile(t *testing.T) (base string, p *testproc.Proc, cfg string) {
	t.Helper()
	kafka := testcluster.Kafka(t, kfake.SeedTopics(1, "test_topic"))
	broker := testcluster.Brokers(kafka)[0]
	bhost, bport, _ := net.SplitHostPort(broker)
	z := testcluster.StartZooKeeper(t)
	conn := z.Conn(t)
	reg := fmt.Sprintf(`{"host":%q,"port":%s,"version":4,"endpoints":["PLAINTEXT://%s"]}`, bhost, bport, broker)
	for _, c := range []string{"/mq/test_cluster", "/mq/common_cluster"} {
		mkdirs(t, conn, c+"/brokers/ids/0", []byte(reg))
	}
	l := zkconsumers.New("/mq/test_cluster")
	mkdirs(t, conn, l.Offset("test_module_1", "test_topic", 0), []byte("0"))
	mkdirs(t, conn, l.Offset("test_module_2", "test_topic", 0), []byte("12"))

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic("test_topic"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := 0; i < 12; i++ {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	port := testproc.FreePort(t)
	cfg = originalConfig(t, z.Addr, port)
	bin := testproc.Build(t, ".")
	if out, err := exec.Command(bin, "-t", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("-t: %v %s", err, out)
	}
	p = testproc.Start(t, bin, "-f", cfg)
	base = fmt.Sprintf("http://127.0.0.1:%d", port)

	return base, p, cfg
}

// TestSecondKmonitorOnOnePortFails starts a second kmonitor from the same
// original file on the same host: its port (the one Zabbix polls) is taken, so
// it must not start elsewhere; it exits 1 naming the port, and the first one
// keeps serving.
func TestSecondKmonitorOnOnePortFails(t *testing.T) {
	base, first, cfg := startOriginalFile(t)
	testproc.Await(t, 20*time.Second, "the first kmonitor answering /delay", func() bool {
		code, _ := get(t, base+"/delay")
		return code == http.StatusOK
	}, first)
	second := testproc.Start(t, testproc.Build(t, "."), "-f", cfg)
	code := second.Wait(20 * time.Second)
	if code != 1 {
		t.Fatalf("second kmonitor: got exit code %d (-1: still running), want 1\n%s", code, second.Output())
	}
	// The original file logs to log_dir: both processes write kmonitor.log there.
	logDir := ""
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, " log_dir: "); ok {
			logDir = v
		}
	}
	log, err := os.ReadFile(filepath.Join(logDir, "kmonitor.log"))
	if err != nil {
		t.Fatalf("read the log: %v", err)
	}
	port := strings.TrimPrefix(base, "http://127.0.0.1:")
	want := regexp.MustCompile(`level=FATAL .*http_server\.port ` + port + `: cannot listen on :` + port + ` .*address already in use`)
	if !want.Match(log) {
		t.Errorf("log lacks a fatal line matching %s:\n%s", want, log)
	}
	if code, body := get(t, base+"/delay"); code != http.StatusOK {
		t.Errorf("first kmonitor after the second failed: got %d %s, want 200", code, body)
	}
	select {
	case <-first.Exited():
		t.Errorf("the first kmonitor exited:\n%s", first.Output())
	default:
	}
}

func TestOriginalConfigDelayAndZabbixSender(t *testing.T) {
	base, p := startOriginal(t)
	const wantJSON = `{"test_cluster":{"test_module_1":{"0":12},"test_module_2":{"0":0}}}`
	const wantZabbix = "- test_cluster.test_module_1.0.delay 12\n- test_cluster.test_module_2.0.delay 0\n"
	testproc.Until(t, 20*time.Second, func() error {
		if _, body := get(t, base+"/delay?cluster=test_cluster"); strings.TrimSpace(body) != wantJSON {
			return fmt.Errorf("/delay: got %q, want %s", body, wantJSON)
		}
		return nil
	}, p)
	if code, body := get(t, base+"/delay"); code != 200 || !strings.Contains(body, `"common_cluster":{}`) {
		t.Errorf("/delay over both clusters: %d %s", code, body)
	}
	code, zbx := get(t, base+"/delay?format=zabbix&cluster=test_cluster")
	if code != 200 || zbx != wantZabbix {
		t.Fatalf("zabbix format: got %d %q, want %q", code, zbx, wantZabbix)
	}
	if code, body := get(t, base+"/delay?cluster=nope"); code != 400 || !strings.Contains(body, "nope") {
		t.Errorf("unknown cluster: got %d %s, want 400 with a reason", code, body)
	}
	if code, body := get(t, base+"/"); code != 200 || !strings.Contains(body, "<html") {
		t.Errorf("dashboard: got %d", code)
	}
	if code, body := get(t, base+"/api/partitions"); code != 200 || !strings.Contains(body, `"module":"test_module_1"`) || !strings.Contains(body, `"lag":12`) {
		t.Errorf("dashboard rows: got %d %s", code, body)
	}

	// zabbix_sender reads the output as is and sends it to a trapper.
	tr := startTrapper(t)
	sender, err := exec.LookPath("zabbix_sender")
	if err != nil {
		t.Fatal("zabbix_sender is not installed: run `make test` (it installs it) or `apt-get install -y zabbix-agent`")
	}
	cmd := exec.Command(sender, "-z", "127.0.0.1", "-p", fmt.Sprint(tr.port()), "-s", "kmonitor-host", "-i", "-", "-vv")
	cmd.Stdin = strings.NewReader(zbx)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zabbix_sender: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "processed: 2; failed: 0") {
		t.Errorf("zabbix_sender output: %s", out)
	}
	got := tr.items()
	want := []zabbixItem{
		{Host: "kmonitor-host", Key: "test_cluster.test_module_1.0.delay", Value: "12"},
		{Host: "kmonitor-host", Key: "test_cluster.test_module_2.0.delay", Value: "0"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("trapper received %v, want %v", got, want)
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(20 * time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM: %d\n%s", code, p.Output())
	}
}

type zabbixItem struct {
	Host  string `json:"host"`
	Key   string `json:"key"`
	Value string `json:"value"`
}

// trapper is a minimal Zabbix trapper: it reads sender requests in the Zabbix
// protocol (ZBXD header, optionally zlib-compressed JSON) and answers success.
type trapper struct {
	ln  net.Listener
	mu  sync.Mutex
	got []zabbixItem
	wg  sync.WaitGroup
}

func startTrapper(t *testing.T) *trapper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &trapper{ln: ln}
	tr.wg.Add(1)
	go tr.serve(t)
	t.Cleanup(func() {
		ln.Close()
		tr.wg.Wait()
	})
	return tr
}

func (tr *trapper) port() int { return tr.ln.Addr().(*net.TCPAddr).Port }

func (tr *trapper) items() []zabbixItem {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]zabbixItem(nil), tr.got...)
}

func (tr *trapper) serve(t *testing.T) {
	defer tr.wg.Done()
	for {
		c, err := tr.ln.Accept()
		if err != nil {
			return
		}
		if err := tr.handle(c); err != nil {
			t.Errorf("trapper: %v", err)
		}
		c.Close()
	}
}

func (tr *trapper) handle(c net.Conn) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var hdr [13]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return err
	}
	if string(hdr[:4]) != "ZBXD" {
		return fmt.Errorf("bad header %q", hdr[:4])
	}
	flags := hdr[4]
	n := binary.LittleEndian.Uint32(hdr[5:9])
	body := make([]byte, n)
	if _, err := io.ReadFull(c, body); err != nil {
		return err
	}
	if flags&0x02 != 0 {
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return err
		}
		if body, err = io.ReadAll(zr); err != nil {
			return err
		}
	}
	var req struct {
		Request string       `json:"request"`
		Data    []zabbixItem `json:"data"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return fmt.Errorf("request %q: %v", body, err)
	}
	if req.Request != "sender data" {
		return fmt.Errorf("request %q", req.Request)
	}
	tr.mu.Lock()
	tr.got = append(tr.got, req.Data...)
	tr.mu.Unlock()
	resp, _ := json.Marshal(map[string]string{"response": "success", "info": fmt.Sprintf("processed: %d; failed: 0; total: %d; seconds spent: 0.000010", len(req.Data), len(req.Data))})
	out := make([]byte, 13, 13+len(resp))
	copy(out, "ZBXD\x01")
	binary.LittleEndian.PutUint32(out[5:9], uint32(len(resp)))
	_, err := c.Write(append(out, resp...))
	return err
}

// TestDashboardOfRunningKmonitor loads / from the running binary in headless
// Chromium (opt-in: make browser-test) and checks the chart and the rows.
func TestDashboardOfRunningKmonitor(t *testing.T) {
	chromium := testproc.Chromium(t, "BROWSER_TEST")
	base, p := startOriginal(t)
	testproc.Until(t, 20*time.Second, func() error {
		// A few samples to draw.
		if _, body := get(t, base+"/api/history?minutes=60"); strings.Count(body, `"lag":12`) < 5 {
			return fmt.Errorf("no history: %s", body)
		}
		return nil
	}, p)
	dom, _ := testproc.RunChromium(t, chromium, base+"/", "--virtual-time-budget=5000", "--dump-dom")
	for _, want := range []string{"test_cluster / test_module_1", "test_cluster / test_module_2", "test_topic"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	shot := filepath.Join(t.TempDir(), "dashboard.png")
	if keep := os.Getenv("DASHBOARD_SCREENSHOT"); keep != "" {
		shot = keep
	}
	testproc.RunChromium(t, chromium, base+"/", "--virtual-time-budget=5000", "--screenshot="+shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	line := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			// The chart line's colour, #1f6fd1 (--line in app.css).
			if abs(int(r>>8)-0x1f) < 24 && abs(int(g>>8)-0x6f) < 24 && abs(int(bl>>8)-0xd1) < 24 {
				line++
			}
		}
	}
	if line < 50 { // a fresh kmonitor has seconds of an hour-wide axis: a short stroke at "now"
		t.Errorf("screenshot %s: %d pixels of the chart line, want a drawn chart", shot, line)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
