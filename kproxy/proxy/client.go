package proxy

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/kafkaconn"
)

// NewKafkaClient returns a new franz-go client of the core's Kafka cluster —
// the brokers (configured or discovered), client id, TLS and SASL of its own
// clients, logging through the core's logger — with opts appended. The doors
// that read from Kafka (topic listings, fetches, consumer groups) use it, so
// that every Kafka connection kproxy opens is set up in one place. The caller
// closes the client.
func (p *Proxy) NewKafkaClient(opts ...kgo.Opt) (*kgo.Client, error) {
	base, err := kafkaconn.Options(p.brokers, p.cfg.Kafka, p.log)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("create Kafka client: %w", err)
	}
	return cl, nil
}
