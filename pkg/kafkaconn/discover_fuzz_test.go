package kafkaconn

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
)

// checkAddress fails t unless addr is HOST:PORT with a non-empty host and a
// decimal port in 1..65535, written without sign or leading zeros.
func checkAddress(t *testing.T, data []byte, addr string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("ParseRegistration(%q) = %q, which is not HOST:PORT: %v", data, addr, err)
	}
	if host == "" {
		t.Fatalf("ParseRegistration(%q) = %q, with an empty host", data, addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		t.Fatalf("ParseRegistration(%q) = %q, port %q is not a port number in 1..65535", data, addr, port)
	}
}

// FuzzParseRegistration feeds arbitrary /brokers/ids/{id} node data to
// ParseRegistration: any ZooKeeper client can write there. Whatever it returns
// must be dialable HOST:PORT.
func FuzzParseRegistration(f *testing.F) {
	for _, s := range []string{
		`{"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"endpoints":["PLAINTEXT://b1:9092"],"jmx_port":-1,"host":"b1","timestamp":"1","port":9092,"version":4}`,
		`{"host":null,"port":-1,"endpoints":["SASL_SSL://b2.example:9094"]}`,
		`{"host":"::1","port":9092}`,
		`{"host":null,"endpoints":["PLAINTEXT://[::1]:9093"]}`,
		`{"host":"b1","port":70000}`,
		`{"host":"b1","port":1e3}`,
		`{"endpoints":["PLAINTEXT://b1:+9092","PLAINTEXT://b1:09092","X://b:1"]}`,
		`{"endpoints":["garbage","","PLAINTEXT://:9092","SSL://b1:99999"]}`,
		`{"HOST":"b1","Port":1}`,
		`null`, `[]`, `{}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		addr, err := ParseRegistration(data)
		if err != nil {
			if addr != "" {
				t.Fatalf("ParseRegistration(%q) = %q with error %v, want no address", data, addr, err)
			}
			return
		}
		checkAddress(t, data, addr)
	})
}

// FuzzRegistrationRoundTrip writes registrations the way Kafka does, in both
// shapes (host and port, or only endpoints under any listener name), and checks
// that ParseRegistration gives back the address whenever it is a valid one, and
// never turns an empty host or an out-of-range port into an address.
func FuzzRegistrationRoundTrip(f *testing.F) {
	f.Add("b1", 9092, "PLAINTEXT")
	f.Add("broker-3.kafka.svc.cluster.local", 19094, "SASL_SSL")
	f.Add("::1", 9093, "REPLICATION_1")
	f.Add("10.0.0.7", 65535, "SSL")
	f.Add("b1", 0, "PLAINTEXT")
	f.Add("b1", 65536, "PLAINTEXT")
	f.Add("b1", -1, "PLAINTEXT")
	f.Add("", 9092, "PLAINTEXT")
	f.Add("[b1]", 9092, "X")
	f.Add("b1", 9092, "")
	f.Fuzz(func(t *testing.T, host string, port int, listener string) {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		portOK := port >= 1 && port <= 65535
		// The address is valid when it splits back into the same host, which
		// is not empty, and the port is in range.
		h, _, err := net.SplitHostPort(addr)
		valid := err == nil && h == host && host != "" && portOK
		endpoint := listener + "://" + addr

		for _, tc := range []struct {
			reg map[string]any
			// exact: the JSON carries exactly the values given, so the
			// answer is known.
			exact bool
		}{
			{map[string]any{"host": host, "port": port, "endpoints": []string{}}, validJSONString(host)},
			{map[string]any{"host": nil, "port": -1, "endpoints": []string{endpoint}},
				validJSONString(endpoint) && !strings.Contains(listener, "://")},
		} {
			data, err := json.Marshal(tc.reg)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got, err := ParseRegistration(data)
			if err == nil {
				checkAddress(t, data, got)
			}
			switch {
			case !tc.exact:
			case valid && (err != nil || got != addr):
				t.Fatalf("ParseRegistration(%s) = %q, %v; want %q", data, got, err, addr)
			case (host == "" || !portOK) && err == nil:
				t.Fatalf("ParseRegistration(%s) = %q, want an error for host %q port %d", data, got, host, port)
			}
		}
	})
}

// validJSONString reports whether s survives encoding/json unchanged.
func validJSONString(s string) bool {
	b, err := json.Marshal(s)
	if err != nil {
		return false
	}
	var back string
	return json.Unmarshal(b, &back) == nil && back == s
}
