package proxy

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/envelope"
)

// Errors of the commit path, the same for every front door. Code classifies them
// (and the Kafka errors they may wrap); each door maps the codes to its own
// answers (kproxy/httpapi to HTTP statuses). Functions wrap them with detail
// using %w.
var (
	// ErrMissingTopic means the topic is absent or empty.
	ErrMissingTopic = errors.New("the topic parameter is required")
	// ErrInvalidTopic means the topic is not a legal Kafka topic name.
	ErrInvalidTopic = errors.New("invalid topic name")
	// ErrInvalidKey means the key is not correctly encoded.
	ErrInvalidKey = errors.New("invalid key encoding")
	// ErrInvalidAcks means acks is not 0, 1 or -1.
	ErrInvalidAcks = errors.New("invalid acks")
	// ErrEmptyBody means the record has no value.
	ErrEmptyBody = errors.New("the request body is empty: it becomes the record value and must not be empty")
	// ErrBodyRead means the value could not be read completely.
	ErrBodyRead = errors.New("could not read the request body")
	// ErrInvalidMsgpack means the value is not exactly one msgpack value.
	ErrInvalidMsgpack = errors.New("the body is not one well-formed msgpack value")
	// ErrInvalidBatch means a batch body is not a msgpack array of records.
	ErrInvalidBatch = errors.New("the body is not a batch of records")
	// ErrInvalidHeader means a record header's name or value breaks the rules
	// of CheckHeader, or a record has more than MaxRecordHeaders.
	ErrInvalidHeader = errors.New("invalid record header")
	// ErrUnauthorized means a Bearer token is required and was missing or wrong.
	ErrUnauthorized = errors.New("a valid Bearer token is required")
	// ErrTopicNotAllowed means the topic is refused by configuration or by Kafka's
	// ACLs.
	ErrTopicNotAllowed = errors.New("topic not allowed")
	// ErrUnknownTopic means Kafka does not know the topic and does not create it.
	ErrUnknownTopic = errors.New("unknown topic")
	// ErrUnknownPartition means the topic has no partition of the number asked for.
	ErrUnknownPartition = errors.New("unknown partition")
	// ErrBodyTooLarge means the value exceeds max_request_size_bytes, or Kafka
	// refused the record as too large.
	ErrBodyTooLarge = errors.New("the body is too large")
	// ErrBackpressure means too many records are in progress or wait for Kafka
	// already (retry later).
	ErrBackpressure = errors.New("too many records are waiting for Kafka; retry later")
	// ErrKafkaUnavailable means Kafka cannot be reached or refused the write with a
	// retriable error (retry later).
	ErrKafkaUnavailable = errors.New("kafka is unavailable; retry later")
	// ErrShuttingDown means kproxy is draining after a stop signal.
	ErrShuttingDown = errors.New("kproxy is shutting down; retry on another instance")
	// ErrTimeout means Kafka did not acknowledge within produce_timeout_ms; the
	// record may or may not have been written.
	ErrTimeout = errors.New("kafka did not acknowledge the record in time; it may or may not have been written")
	// ErrCanceled means the caller went away (its context ended) before Kafka
	// answered; the record may or may not be written.
	ErrCanceled = errors.New("the caller went away before Kafka answered")
)

// The machine codes Code returns, shared by every door.
const (
	CodeMissingTopic     = "missing_topic"
	CodeInvalidTopic     = "invalid_topic"
	CodeInvalidKey       = "invalid_key"
	CodeInvalidAcks      = "invalid_acks"
	CodeEmptyBody        = "empty_body"
	CodeBodyRead         = "body_read_error"
	CodeInvalidMsgpack   = "invalid_msgpack"
	CodeInvalidBatch     = "invalid_batch"
	CodeInvalidHeader    = "invalid_header"
	CodeUnauthorized     = "unauthorized"
	CodeTopicNotAllowed  = "topic_not_allowed"
	CodeUnknownTopic     = "unknown_topic"
	CodeUnknownPartition = "unknown_partition"
	CodeBodyTooLarge     = "body_too_large"
	CodeBackpressure     = "backpressure"
	CodeShuttingDown     = "shutting_down"
	CodeKafkaTimeout     = "kafka_timeout"
	CodeCanceled         = "client_gone"
	CodeKafkaUnavailable = "kafka_unavailable"
)

// Code classifies an error of the commit path: it returns the machine code of
// the sentinel or Kafka error err wraps. It is the one place that decides what
// kind of failure an error is; every door maps codes to its answers.
func Code(err error) string {
	switch {
	case errors.Is(err, ErrMissingTopic):
		return CodeMissingTopic
	case errors.Is(err, ErrInvalidTopic), errors.Is(err, kerr.InvalidTopicException):
		return CodeInvalidTopic
	case errors.Is(err, ErrInvalidKey):
		return CodeInvalidKey
	case errors.Is(err, ErrInvalidAcks):
		return CodeInvalidAcks
	case errors.Is(err, ErrEmptyBody):
		return CodeEmptyBody
	case errors.Is(err, ErrBodyRead):
		return CodeBodyRead
	case errors.Is(err, ErrInvalidMsgpack), errors.Is(err, envelope.ErrEmpty):
		return CodeInvalidMsgpack
	case errors.Is(err, ErrInvalidBatch):
		return CodeInvalidBatch
	case errors.Is(err, ErrInvalidHeader):
		return CodeInvalidHeader
	case errors.Is(err, ErrUnauthorized):
		return CodeUnauthorized
	case errors.Is(err, ErrTopicNotAllowed), errors.Is(err, kerr.TopicAuthorizationFailed):
		return CodeTopicNotAllowed
	case errors.Is(err, ErrUnknownTopic), errors.Is(err, kerr.UnknownTopicOrPartition):
		return CodeUnknownTopic
	case errors.Is(err, ErrUnknownPartition):
		return CodeUnknownPartition
	case errors.Is(err, ErrBodyTooLarge), errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return CodeBodyTooLarge
	case errors.Is(err, ErrBackpressure), errors.Is(err, kgo.ErrMaxBuffered):
		return CodeBackpressure
	case errors.Is(err, ErrShuttingDown), errors.Is(err, kgo.ErrClientClosed):
		return CodeShuttingDown
	case errors.Is(err, ErrCanceled):
		return CodeCanceled
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrRecordTimeout):
		return CodeKafkaTimeout
	default:
		// Everything else Kafka or the network reports — unreachable brokers, not
		// enough in-sync replicas, leader moves that ran out of retries — is
		// "Kafka unavailable": the caller should retry later.
		return CodeKafkaUnavailable
	}
}

// Retriable reports whether a failure of code may pass if the caller retries
// later: backpressure, draining, Kafka unavailable or slow.
func Retriable(code string) bool {
	switch code {
	case CodeBackpressure, CodeShuttingDown, CodeKafkaUnavailable, CodeKafkaTimeout:
		return true
	}
	return false
}
