package kafkaconn

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
)

func TestParseRegistration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		data    string
		want    string
		wantErr string
	}{
		{name: "host and port",
			data: `{"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"endpoints":["PLAINTEXT://b1:9092"],"jmx_port":-1,"host":"b1","timestamp":"1","port":9092,"version":4}`,
			want: "b1:9092"},
		{name: "host and port win over endpoints",
			data: `{"host":"b1","port":9092,"endpoints":["SASL_SSL://b1-tls:9094"]}`, want: "b1:9092"},
		{name: "null host, endpoint",
			data: `{"host":null,"port":-1,"endpoints":["SASL_SSL://b2.example:9094"]}`, want: "b2.example:9094"},
		{name: "empty host", data: `{"host":"","port":9092,"endpoints":["PLAINTEXT://b3:9093"]}`, want: "b3:9093"},
		{name: "zero port", data: `{"host":"b4","port":0,"endpoints":["PLAINTEXT://b4:9093"]}`, want: "b4:9093"},
		{name: "no host or port keys", data: `{"endpoints":["PLAINTEXT://b5:9092"]}`, want: "b5:9092"},
		{name: "first usable endpoint",
			data: `{"endpoints":["garbage","PLAINTEXT://:9092","PLAINTEXT://b6:http","PLAINTEXT://b6:0","PLAINTEXT://b6","INTERNAL://b6:9095","PLAINTEXT://b6:9092"]}`,
			want: "b6:9095"},
		{name: "listener name with underscore",
			data: `{"host":null,"port":-1,"endpoints":["SASL_PLAINTEXT://b7:9096"]}`, want: "b7:9096"},
		{name: "custom listener name",
			data: `{"host":null,"port":-1,"endpoints":["REPLICATION_1://b8:9097"]}`, want: "b8:9097"},
		{name: "IPv6 host", data: `{"host":"::1","port":9092}`, want: "[::1]:9092"},
		{name: "IPv6 endpoint", data: `{"host":null,"endpoints":["PLAINTEXT://[::1]:9093"]}`, want: "[::1]:9093"},
		{name: "not JSON", data: `garbage`, wantErr: "broker registration is not JSON"},
		{name: "empty", data: ``, wantErr: "broker registration is not JSON"},
		{name: "truncated", data: `{"host":"b1","port":90`, wantErr: "broker registration is not JSON"},
		{name: "wrong type", data: `{"host":"b1","port":"9092"}`, wantErr: "broker registration is not JSON"},
		{name: "JSON array", data: `["b1:9092"]`, wantErr: "broker registration is not JSON"},
		{name: "empty object", data: `{}`, wantErr: "neither host/port nor a usable endpoint"},
		{name: "JSON null", data: `null`, wantErr: "neither host/port nor a usable endpoint"},
		{name: "host without port", data: `{"host":"b1"}`, wantErr: "neither host/port nor a usable endpoint"},
		{name: "unusable endpoints", data: `{"host":null,"port":-1,"endpoints":["garbage","","b1:9092","PLAINTEXT://:9092","SSL://b1:99999"]}`,
			wantErr: "neither host/port nor a usable endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRegistration([]byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got %q, %v, want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v, want %q, nil", got, err, tt.want)
			}
		})
	}
}

// createAll creates p and any missing parents with data for p.
func createAll(t *testing.T, conn *zk.Conn, p string, data string) {
	t.Helper()
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i := range parts {
		cur := "/" + strings.Join(parts[:i+1], "/")
		var d []byte
		if i == len(parts)-1 {
			d = []byte(data)
		}
		_, err := conn.Create(cur, d, 0, zk.WorldACL(zk.PermAll))
		if err != nil && !(errors.Is(err, zk.ErrNodeExists) && i < len(parts)-1) {
			t.Fatalf("create %s: %v", cur, err)
		}
	}
}

func TestDiscoverBrokers(t *testing.T) {
	t.Parallel()
	z := testcluster.StartZooKeeper(t)
	conn := z.Conn(t)

	// One registration with host/port, one listeners-only, one broken.
	createAll(t, conn, "/chroot/brokers/ids/1",
		`{"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"endpoints":["PLAINTEXT://127.0.0.1:9094"],"jmx_port":-1,"host":"127.0.0.1","timestamp":"1700000000000","port":9094,"version":4}`)
	createAll(t, conn, "/chroot/brokers/ids/2",
		`{"listener_security_protocol_map":{"SASL_SSL":"SASL_SSL"},"endpoints":["SASL_SSL://127.0.0.1:9093"],"jmx_port":-1,"host":null,"timestamp":"1700000000000","port":-1,"version":5}`)
	createAll(t, conn, "/chroot/brokers/ids/3", `{"host":"127.0.0.1","port":9092}`)
	createAll(t, conn, "/chroot/brokers/ids/4", `not json`)
	// The same layout without a chroot.
	createAll(t, conn, "/brokers/ids/0", `{"host":"127.0.0.1","port":9092}`)
	createAll(t, conn, "/brokers/ids/7", `{"host":null,"endpoints":["PLAINTEXT://127.0.0.1:19092"]}`)
	// A chroot whose ids directory is empty, and one with only broken nodes.
	createAll(t, conn, "/empty/brokers/ids", "")
	createAll(t, conn, "/broken/brokers/ids/1", `{}`)

	hosts := []string{z.Addr}
	tests := []struct {
		name    string
		chroot  string
		want    []string
		wantErr []string
		wantIs  error
	}{
		{name: "chroot", chroot: "/chroot", want: []string{"127.0.0.1:9092", "127.0.0.1:9093", "127.0.0.1:9094"}},
		{name: "chroot without slash", chroot: "chroot", want: []string{"127.0.0.1:9092", "127.0.0.1:9093", "127.0.0.1:9094"}},
		{name: "root", chroot: "/", want: []string{"127.0.0.1:19092", "127.0.0.1:9092"}},
		{name: "empty chroot", chroot: "", want: []string{"127.0.0.1:19092", "127.0.0.1:9092"}},
		{name: "empty ids", chroot: "/empty", wantErr: []string{"no broker registered under /empty/brokers/ids"}},
		{name: "only broken registrations", chroot: "/broken",
			wantErr: []string{"/broken/brokers/ids/1: broker registration has neither", "no broker registered under /broken/brokers/ids"}},
		{name: "missing chroot", chroot: "/missing", wantErr: []string{"list /missing/brokers/ids"}, wantIs: zk.ErrNoNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			got, err := DiscoverBrokers(ctx, hosts, tt.chroot, 5*time.Second)
			if len(tt.wantErr) == 0 {
				if err != nil || !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %v, %v, want %v, nil", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %v, nil, want an error", got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to contain %q", err, w)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("got error %v, want one wrapping %v", err, tt.wantIs)
			}
		})
	}

	t.Run("ReadBrokers", func(t *testing.T) {
		t.Parallel()
		got, err := ReadBrokers(conn, "/chroot")
		if want := []string{"127.0.0.1:9092", "127.0.0.1:9093", "127.0.0.1:9094"}; err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, %v, want %v, nil", got, err, want)
		}
	})
}

func TestDiscoverBrokersUnreachable(t *testing.T) {
	t.Parallel()
	addr := testproc.FreeAddr(t)

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		const timeout = time.Second
		start := time.Now()
		got, err := DiscoverBrokers(context.Background(), []string{addr}, "/", timeout)
		elapsed := time.Since(start)
		if err == nil {
			t.Fatalf("got %v, nil, want an error", got)
		}
		for _, w := range []string{"connect to ZooKeeper", addr, "no session within 1s"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("got error %q, want it to contain %q", err, w)
			}
		}
		if elapsed > timeout+5*time.Second {
			t.Errorf("returned after %v, want about the %v timeout", elapsed, timeout)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		got, err := DiscoverBrokers(ctx, []string{addr}, "/", time.Minute)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, %v, want an error wrapping context.Canceled", got, err)
		}
	})
}
