package kafkaconn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconn"
)

// brokerRegistration is what a Kafka broker in ZooKeeper mode writes to
// /brokers/ids/{id}. host and port are null when only listeners are configured; then
// the endpoints carry the addresses.
type brokerRegistration struct {
	Host      *string  `json:"host"`
	Port      *int     `json:"port"`
	Endpoints []string `json:"endpoints"`
}

// ParseRegistration returns HOST:PORT from one /brokers/ids/{id} node.
func ParseRegistration(data []byte) (string, error) {
	var r brokerRegistration
	if err := json.Unmarshal(data, &r); err != nil {
		return "", fmt.Errorf("broker registration is not JSON: %w", err)
	}
	if r.Host != nil && *r.Host != "" && r.Port != nil && *r.Port > 0 && *r.Port <= 65535 {
		// A host such as "[" would give an address nobody can dial.
		addr := net.JoinHostPort(*r.Host, strconv.Itoa(*r.Port))
		if h, _, err := net.SplitHostPort(addr); err == nil && h == *r.Host {
			return addr, nil
		}
	}
	// An endpoint is LISTENER://HOST:PORT. Listener names such as SASL_SSL are not
	// valid URL schemes, so url.Parse would reject them.
	for _, ep := range r.Endpoints {
		_, hp, ok := strings.Cut(ep, "://")
		if !ok {
			continue
		}
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" {
			continue
		}
		n, err := strconv.Atoi(port)
		if err != nil || n <= 0 || n > 65535 {
			continue
		}
		return net.JoinHostPort(host, strconv.Itoa(n)), nil
	}
	return "", errors.New("broker registration has neither host/port nor a usable endpoint")
}

// DiscoverBrokers reads every broker registered under {chroot}/brokers/ids on the
// ZooKeeper ensemble zkHosts and returns their addresses, sorted. timeout is the
// session timeout and bounds the wait for the session.
func DiscoverBrokers(ctx context.Context, zkHosts []string, chroot string, timeout time.Duration) ([]string, error) {
	conn, err := zkconn.Dial(ctx, zkHosts, timeout, zkconn.Options{SessionTimeout: timeout})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return ReadBrokers(conn.Conn, chroot)
}

// ReadBrokers lists {chroot}/brokers/ids through an existing ZooKeeper connection.
func ReadBrokers(conn *zk.Conn, chroot string) ([]string, error) {
	dir := path.Join("/", chroot, "brokers/ids")
	ids, _, err := conn.Children(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	var errs []error
	for _, id := range ids {
		data, _, err := conn.Get(path.Join(dir, id))
		if errors.Is(err, zk.ErrNoNode) {
			continue // broker went away between the two calls
		}
		if err != nil {
			return nil, fmt.Errorf("read %s/%s: %w", dir, id, err)
		}
		hp, err := ParseRegistration(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %w", dir, id, err))
			continue
		}
		out = append(out, hp)
	}
	if len(out) == 0 {
		errs = append(errs, fmt.Errorf("no broker registered under %s", dir))
		return nil, errors.Join(errs...)
	}
	sort.Strings(out)
	return out, nil
}
