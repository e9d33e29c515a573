package proxy

import (
	"context"
	"errors"
	"net/http"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/envelope"
)

// Errors of a /commit request. Each maps to one HTTP status and machine code in
// classify; handlers wrap them with detail using %w.
var (
	// ErrMissingTopic means the topic parameter is absent or empty (400).
	ErrMissingTopic = errors.New("the topic parameter is required")
	// ErrInvalidTopic means the topic is not a legal Kafka topic name (400).
	ErrInvalidTopic = errors.New("invalid topic name")
	// ErrInvalidKey means the key parameter is not correctly percent-encoded (400).
	ErrInvalidKey = errors.New("invalid key encoding")
	// ErrInvalidAcks means acks is not 0, 1 or -1 (400).
	ErrInvalidAcks = errors.New("invalid acks")
	// ErrEmptyBody means the request had no body (400).
	ErrEmptyBody = errors.New("the request body is empty: it becomes the record value and must not be empty")
	// ErrBodyRead means the body could not be read completely (400).
	ErrBodyRead = errors.New("could not read the request body")
	// ErrInvalidMsgpack means the body is not exactly one msgpack value (400).
	ErrInvalidMsgpack = errors.New("the body is not one well-formed msgpack value")
	// ErrUnauthorized means a Bearer token is required and was missing or wrong (401).
	ErrUnauthorized = errors.New("a valid Bearer token is required")
	// ErrTopicNotAllowed means the topic is refused by configuration or by Kafka's
	// ACLs (403).
	ErrTopicNotAllowed = errors.New("topic not allowed")
	// ErrNotFound means the path is not served (404).
	ErrNotFound = errors.New("no such endpoint")
	// ErrUnknownTopic means Kafka does not know the topic and does not create it (404).
	ErrUnknownTopic = errors.New("unknown topic")
	// ErrMethodNotAllowed means a method other than POST was used on /commit (405).
	ErrMethodNotAllowed = errors.New("only POST is allowed")
	// ErrBodyTooLarge means the body exceeds max_request_size_bytes, or Kafka refused
	// the record as too large (413).
	ErrBodyTooLarge = errors.New("the body is too large")
	// ErrBackpressure means too many records wait for Kafka already (503, retry later).
	ErrBackpressure = errors.New("too many records are waiting for Kafka; retry later")
	// ErrKafkaUnavailable means Kafka cannot be reached or refused the write with a
	// retriable error (503, retry later).
	ErrKafkaUnavailable = errors.New("kafka is unavailable; retry later")
	// ErrShuttingDown means kproxy is draining after a stop signal (503).
	ErrShuttingDown = errors.New("kproxy is shutting down; retry on another instance")
	// ErrTimeout means Kafka did not acknowledge within produce_timeout_ms (504); the
	// record may or may not have been written.
	ErrTimeout = errors.New("kafka did not acknowledge the record in time; it may or may not have been written")
)

// classify maps an error of the /commit path to its HTTP status and machine code.
// It is the one place that decides statuses.
func classify(err error) (status int, code string) {
	switch {
	case errors.Is(err, ErrMissingTopic):
		return http.StatusBadRequest, "missing_topic"
	case errors.Is(err, ErrInvalidTopic), errors.Is(err, kerr.InvalidTopicException):
		return http.StatusBadRequest, "invalid_topic"
	case errors.Is(err, ErrInvalidKey):
		return http.StatusBadRequest, "invalid_key"
	case errors.Is(err, ErrInvalidAcks):
		return http.StatusBadRequest, "invalid_acks"
	case errors.Is(err, ErrEmptyBody):
		return http.StatusBadRequest, "empty_body"
	case errors.Is(err, ErrBodyRead):
		return http.StatusBadRequest, "body_read_error"
	case errors.Is(err, ErrInvalidMsgpack), errors.Is(err, envelope.ErrEmpty):
		return http.StatusBadRequest, "invalid_msgpack"
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, ErrTopicNotAllowed), errors.Is(err, kerr.TopicAuthorizationFailed):
		return http.StatusForbidden, "topic_not_allowed"
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, ErrUnknownTopic), errors.Is(err, kerr.UnknownTopicOrPartition):
		return http.StatusNotFound, "unknown_topic"
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed, "method_not_allowed"
	case errors.Is(err, ErrBodyTooLarge), errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return http.StatusRequestEntityTooLarge, "body_too_large"
	case errors.Is(err, ErrBackpressure), errors.Is(err, kgo.ErrMaxBuffered):
		return http.StatusServiceUnavailable, "backpressure"
	case errors.Is(err, ErrShuttingDown), errors.Is(err, kgo.ErrClientClosed):
		return http.StatusServiceUnavailable, "shutting_down"
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrRecordTimeout):
		return http.StatusGatewayTimeout, "kafka_timeout"
	default:
		// Everything else Kafka or the network reports — unreachable brokers, not
		// enough in-sync replicas, leader moves that ran out of retries — is
		// "Kafka unavailable": the caller should retry later.
		return http.StatusServiceUnavailable, "kafka_unavailable"
	}
}
