package pubsub

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Errors a command can fail with. Each becomes an ErrorResp whose code is the
// HTTP status of the same meaning (see errorCode); callers match them with
// errors.Is.
var (
	// ErrUnknownCommand is a request without a command, or with CmdEmpty
	// (APISIX has no handler for it either).
	ErrUnknownCommand = errors.New("unknown command")
	// ErrWrongCommand is a binary frame that is not a PubSubReq. Its answer
	// carries sequence 0: the frame's own cannot be read.
	ErrWrongCommand = errors.New("wrong command")
	// ErrInvalidRequest is a command with a value Kafka cannot serve: a
	// timestamp below -2, a negative partition, an overlong topic name.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrTopicNotAllowed is a topic refused by the topic rules (Options.TopicAllowed)
	// or by Kafka's ACLs.
	ErrTopicNotAllowed = errors.New("topic not allowed")
	// ErrUnknownTopicOrPartition is a topic or partition Kafka does not have.
	ErrUnknownTopicOrPartition = errors.New("unknown topic or partition")
	// ErrOffsetOutOfRange is a fetch offset below the log start or above the
	// log end.
	ErrOffsetOutOfRange = errors.New("offset out of range")
	// ErrKafkaUnavailable is a Kafka request that failed: no broker reachable,
	// no leader, a broker error or a corrupt batch.
	ErrKafkaUnavailable = errors.New("kafka unavailable")
	// ErrTimeout is a command Kafka did not answer within Options.RequestTimeout.
	ErrTimeout = errors.New("kafka did not answer in time")
	// ErrShuttingDown is a request or upgrade refused while the handler shuts down.
	ErrShuttingDown = errors.New("shutting down")
)

// Codes of ErrorResp, after the HTTP statuses of the same meaning. APISIX
// always sends 0; its clients read only the message.
const (
	codeBadRequest      = 400
	codeForbidden       = 403
	codeNotFound        = 404
	codeOutOfRange      = 416
	codeUnavailable     = 503
	codeTimeout         = 504
	codeInternalFailure = 500
)

// errorCode maps err to the code of its ErrorResp and the label of its metric;
// it is the only place that does.
func errorCode(err error) (code int32, label string) {
	switch {
	case errors.Is(err, ErrUnknownCommand):
		return codeBadRequest, "unknown_command"
	case errors.Is(err, ErrWrongCommand):
		return codeBadRequest, "wrong_command"
	case errors.Is(err, ErrInvalidRequest):
		return codeBadRequest, "invalid_request"
	case errors.Is(err, ErrTopicNotAllowed):
		return codeForbidden, "topic_not_allowed"
	case errors.Is(err, ErrUnknownTopicOrPartition):
		return codeNotFound, "unknown_topic_or_partition"
	case errors.Is(err, ErrOffsetOutOfRange):
		return codeOutOfRange, "offset_out_of_range"
	case errors.Is(err, ErrTimeout):
		return codeTimeout, "kafka_timeout"
	case errors.Is(err, ErrKafkaUnavailable):
		return codeUnavailable, "kafka_unavailable"
	case errors.Is(err, ErrShuttingDown):
		return codeUnavailable, "shutting_down"
	default:
		return codeInternalFailure, "internal"
	}
}

// kafkaError wraps an error from Kafka or the client in the sentinel that
// describes it for the client.
func kafkaError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID),
		errors.Is(err, kerr.InvalidTopicException):
		return fmt.Errorf("%w: %v", ErrUnknownTopicOrPartition, err)
	case errors.Is(err, kerr.TopicAuthorizationFailed):
		return fmt.Errorf("%w by Kafka's ACLs: %v", ErrTopicNotAllowed, err)
	case errors.Is(err, kerr.OffsetOutOfRange):
		return fmt.Errorf("%w: %v", ErrOffsetOutOfRange, err)
	default:
		return fmt.Errorf("%w: %v", ErrKafkaUnavailable, err)
	}
}

// retriableLeaderError reports whether err means the cached leader or topic ID
// is stale, so one more attempt after a metadata refresh may succeed.
func retriableLeaderError(err error) bool {
	return errors.Is(err, kerr.NotLeaderForPartition) || errors.Is(err, kerr.FencedLeaderEpoch) ||
		errors.Is(err, kerr.UnknownLeaderEpoch) || errors.Is(err, kerr.LeaderNotAvailable) ||
		errors.Is(err, kerr.ReplicaNotAvailable) || errors.Is(err, kerr.KafkaStorageError) ||
		errors.Is(err, kerr.UnknownTopicID)
}
