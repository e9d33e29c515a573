package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Enabled bool   `key:"enabled"`
	Name    string `key:"name"`
}

type embedded struct {
	LogDir string `key:"log_dir"`
}

type sample struct {
	embedded
	Port    int                 `key:"port"`
	Ratio   float64             `key:"ratio"`
	Hosts   []string            `key:"hosts"`
	Codes   []string            `key:"codes"`
	Inner   inner               `key:"inner"`
	Headers []map[string]string `key:"headers"`
	Wait    time.Duration       `key:"wait"`
	Skipped string              `key:"-"`
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, body string) (sample, error) {
	t.Helper()
	f, err := Open(writeFile(t, "app.yaml", body), "APPTEST")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s := sample{Port: 80, Inner: inner{Name: "default"}, Wait: time.Second}
	f.Decode("", &s)
	if s.Port > 65535 {
		f.Range("port", int64(s.Port), 1, 65535)
	}
	return s, f.Err()
}

func TestDecodeValues(t *testing.T) {
	s, err := load(t, `
log_dir: ./log
port: 5030
ratio: 0.5
hosts:
 - a:1
 - b:2
codes: [408, 429, "500-599"]
inner:
  enabled: true
headers:
  - Host: www.example.org
  - X-Trace: "1"
wait: 250ms
`)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	want := sample{
		embedded: embedded{LogDir: "./log"},
		Port:     5030, Ratio: 0.5,
		Hosts:   []string{"a:1", "b:2"},
		Codes:   []string{"408", "429", "500-599"},
		Inner:   inner{Enabled: true, Name: "default"},
		Headers: []map[string]string{{"host": "www.example.org"}, {"x-trace": "1"}},
		Wait:    250 * time.Millisecond,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got %+v\nwant %+v", s, want)
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	_, err := load(t, `
port: 70000
portt: 1
ratio: fast
hosts: 7
inner:
  enabled: maybe
  nmae: x
wait: 5
`)
	if err == nil {
		t.Fatal("got no error")
	}
	want := []string{
		`app.yaml: hosts: 7 is not a list`,
		`app.yaml: inner.enabled: "maybe" is not true or false`,
		`app.yaml: inner.nmae: unknown key (misspelt, or not valid here)`,
		`app.yaml: port: 70000 is not in 1..65535`,
		`app.yaml: portt: unknown key (misspelt, or not valid here)`,
		`app.yaml: ratio: "fast" is not a number`,
		`app.yaml: wait: 5 is not a duration such as 500ms, 30s or 2m`,
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("APPTEST_PORT", "9000")
	t.Setenv("APPTEST_HOSTS", "x:1, y:2")
	t.Setenv("APPTEST_INNER_ENABLED", "true")
	t.Setenv("APPTEST_INNER_NAME", "from-env")
	s, err := load(t, "port: 5030\n")
	if err != nil {
		t.Fatalf("got error %v", err)
	}
	if s.Port != 9000 || !reflect.DeepEqual(s.Hosts, []string{"x:1", "y:2"}) || !s.Inner.Enabled || s.Inner.Name != "from-env" {
		t.Errorf("got %+v, want the environment's values", s)
	}
}

func TestUnknownEnvironmentOverride(t *testing.T) {
	t.Setenv("APPTEST_PROT", "9000")
	_, err := load(t, "port: 5030\n")
	if err == nil || !strings.Contains(err.Error(), "APPTEST_PROT: unknown override") {
		t.Errorf("got %v, want the unknown override named", err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing.yaml"), ""); err == nil {
		t.Error("missing file: got no error")
	}
	if _, err := Open(writeFile(t, "bad.yaml", "a: [1, 2\n"), ""); err == nil {
		t.Error("broken YAML: got no error")
	}
	if _, err := Open("", ""); err == nil {
		t.Error("no path: got no error")
	}
}

func TestChecks(t *testing.T) {
	f, err := Open(writeFile(t, "c.yaml", "a: 1\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	var a int
	f.Decode("", &struct {
		A *int `key:"-"`
		B int  `key:"a"`
	}{A: &a})
	f.Min("m", -1, 0)
	f.OneOf("o", "x", "a", "b")
	f.NotEmpty("n", 0)
	f.HostPort("h", []string{"ok:1", "bad", ":2", "x:"})
	f.Readable("r", filepath.Join(t.TempDir(), "none"))
	if res := f.Regexps("p", []string{"a.*", "("}); len(res) != 1 || !res[0].MatchString("abc") || res[0].MatchString("xabc") {
		t.Errorf("Regexps: got %v, want one anchored pattern", res)
	}
	err = f.Err()
	for _, want := range []string{
		`c.yaml: m: -1 is less than 0`,
		`c.yaml: o: "x" is not one of a, b`,
		`c.yaml: n: is required`,
		`c.yaml: h: "bad" is not HOST:PORT`,
		`c.yaml: h: ":2" is not HOST:PORT`,
		`c.yaml: h: "x:" is not HOST:PORT`,
		`c.yaml: r: "`,
		`c.yaml: p: "(" is not a valid regular expression`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), `"ok:1"`) {
		t.Error("a valid HOST:PORT was reported")
	}
}

func TestKeysAndSections(t *testing.T) {
	want := []string{"log_dir", "port", "ratio", "hosts", "codes", "inner.enabled", "inner.name", "headers", "wait"}
	if got := Keys(sample{}); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	f, err := Open(writeFile(t, "s.yaml", "b:\n  x: 1\na: 2\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Sections(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("got sections %v, want [a b]", got)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("port: 1\nhosts: [a]\ninner: {enabled: true}\n"))
	f.Add([]byte("headers:\n - Host: x\nwait: 1s\n"))
	f.Add([]byte("port: [1]\ninner: 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f.yaml")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := Open(p, "")
		if err != nil {
			return
		}
		var s sample
		file.Decode("", &s)
		_ = file.Err()
	})
}

func TestUnset(t *testing.T) {
	p := writeFile(t, "u.yaml", "port: 1\ninner: {name: x}\nsec: {port: 2}\n")
	got, err := Unset(p, "", sample{})
	want := []string{"log_dir", "ratio", "hosts", "codes", "inner.enabled", "headers", "wait"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v %v, want %v", got, err, want)
	}
	got, _ = Unset(p, "sec", struct {
		Port int `key:"port"`
		Host int `key:"host"`
	}{})
	if !reflect.DeepEqual(got, []string{"sec.host"}) {
		t.Errorf("section: got %v, want [sec.host]", got)
	}
	if _, err := Unset(filepath.Join(t.TempDir(), "none.yaml"), "", sample{}); err == nil {
		t.Error("missing file: got no error")
	}
}

// TestKeysMatchedExactly: a key written in another case than its tag is
// reported (viper alone would take it), once, while free-form sub-keys and
// section names a program looks up itself keep any case.
func TestKeysMatchedExactly(t *testing.T) {
	f, err := Open(writeFile(t, "case.yaml", `
Port: 1
inner:
  Enabled: true
  name: x
Inner2:
  name: y
headers:
  - X-Trace: "1"
MyCluster:
  Name: z
  enabled: true
`), "")
	if err != nil {
		t.Fatal(err)
	}
	var s sample
	f.Decode("", &s)
	var c inner
	f.Decode("mycluster", &c) // a section the operator named, looked up in lower case
	err = f.Err()
	if err == nil {
		t.Fatal("got no error")
	}
	want := []string{
		`case.yaml: inner.Enabled: unknown key (keys are written in lower case: inner.enabled)`,
		`case.yaml: inner2.name: unknown key (misspelt, or not valid here)`,
		`case.yaml: MyCluster.Name: unknown key (keys are written in lower case: mycluster.name)`,
		`case.yaml: Port: unknown key (keys are written in lower case: port)`,
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !c.Enabled {
		t.Error("the operator-named section was not decoded")
	}
}

func TestHostPortPorts(t *testing.T) {
	f, err := Open(writeFile(t, "hp.yaml", "a: 1\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	f.HostPort("h", []string{"zk1:2181", "[::1]:9092", "x:0", "x:65536", "x:abc", "x:+1", "::1:9092"})
	err = f.Err()
	for _, bad := range []string{`"x:0"`, `"x:65536"`, `"x:abc"`, `"x:+1"`, `"::1:9092"`} {
		if err == nil || !strings.Contains(err.Error(), "h: "+bad+" is not HOST:PORT") {
			t.Errorf("got %v, want %s reported", err, bad)
		}
	}
	for _, ok := range []string{`"zk1:2181"`, `"[::1]:9092"`} {
		if err != nil && strings.Contains(err.Error(), ok) {
			t.Errorf("valid %s reported: %v", ok, err)
		}
	}
}
