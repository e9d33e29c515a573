package devicehive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
)

// The message types and actions of the protocol.
const (
	typeTopic  = "topic"
	typeNotif  = "notif"
	typeHealth = "health"

	actionCreate      = "create"
	actionList        = "list"
	actionSubscribe   = "subscribe"
	actionUnsubscribe = "unsubscribe"
)

// message is one decoded request. A message that could not be decoded carries
// the reason in err and is answered with an error reply, with its id when the
// id could be read.
type message struct {
	id   json.RawMessage // the request's id as sent; null when absent
	t, a string
	p    json.RawMessage // nil when absent
	err  error
}

var jsonNull = json.RawMessage("null")

// decodeFrame splits a frame into its messages: one JSON object, or an array
// of them, in order. A frame that is not JSON returns ErrBadJSON (one error
// reply, without an id); an element that is not a well-formed message is
// returned with its err set, so that every element gets exactly one reply.
func decodeFrame(frame []byte) ([]message, error) {
	b := bytes.TrimLeft(frame, " \t\r\n")
	if !json.Valid(b) {
		return nil, fmt.Errorf("%w (%d bytes)", ErrBadJSON, len(frame))
	}
	if b[0] != '[' {
		return []message{decodeMessage(b)}, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	msgs := make([]message, len(raws))
	for i, raw := range raws {
		msgs[i] = decodeMessage(raw)
	}
	return msgs, nil
}

// decodeMessage decodes one message of valid JSON.
func decodeMessage(raw json.RawMessage) message {
	m := message{id: jsonNull}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		m.err = fmt.Errorf(`%w: a message is a JSON object {"id","t","a","p"}`, ErrBadMessage)
		return m
	}
	if id, ok := fields["id"]; ok {
		m.id = id
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"t", &m.t}, {"a", &m.a}} {
		v, ok := fields[f.name]
		if !ok || isNull(v) {
			continue
		}
		if err := json.Unmarshal(v, f.dst); err != nil {
			m.err = fmt.Errorf("%w: %q must be a string", ErrBadMessage, f.name)
		}
	}
	if p, ok := fields["p"]; ok && !isNull(p) {
		m.p = p
	}
	return m
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// kind returns the metric label of a message: type_action, or invalid.
func (m *message) kind() string {
	if m.err != nil {
		return kindInvalid
	}
	switch m.t {
	case typeTopic:
		switch m.a {
		case actionCreate, actionList, actionSubscribe, actionUnsubscribe:
			return "topic_" + m.a
		}
	case typeNotif:
		if m.a == actionCreate {
			return kindNotifCreate
		}
	case typeHealth:
		return kindHealth
	}
	return kindUnknown
}

// reply is the answer to one message. Clients of both upstream generations
// match replies on "refid" or on "id", so both carry the request's id.
type reply struct {
	ID    json.RawMessage `json:"id"`
	RefID json.RawMessage `json:"refid"`
	T     string          `json:"t"`
	A     string          `json:"a"`
	S     int             `json:"s"`
	P     any             `json:"p"`
	// Code is the machine code of an error (kproxy's codes); absent when S is 0.
	Code string `json:"code,omitempty"`
}

// okReply answers m with status 0 and payload p.
func okReply(m *message, p any) *reply {
	return &reply{ID: m.id, RefID: m.id, T: m.t, A: m.a, P: p}
}

// errorReply answers m with err: a non-zero status, err's machine code and its
// text as the payload.
func errorReply(m *message, err error) *reply {
	s, code := Status(err)
	return &reply{ID: m.id, RefID: m.id, T: m.t, A: m.a, S: s, P: err.Error(), Code: code}
}

// notification is one record in a notification frame. ID, T and P are
// upstream's; the rest are extra fields, which old clients ignore. P and Key
// are the record's value and key as text when they are valid UTF-8; otherwise
// both are base64 (standard, padded) and Enc is "base64".
type notification struct {
	ID        int64   `json:"id"`
	T         string  `json:"t"`
	P         string  `json:"p"`
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Key       *string `json:"key"`
	Timestamp int64   `json:"timestamp"`
	Enc       string  `json:"enc,omitempty"`
}

// textOf reports whether key and value can go in a frame as they are (valid
// UTF-8; JSON strings cannot carry anything else).
func textOf(key, value []byte) bool { return utf8.Valid(key) && utf8.Valid(value) }

// Errors of the protocol itself; the core's errors (proxy.Err*) and Kafka's
// come through as they are. Status maps both to replies.
var (
	// ErrBadJSON is a frame that is not JSON.
	ErrBadJSON = errors.New("the frame is not valid JSON")
	// ErrBadMessage is a JSON value that is not a message object, or one whose
	// "t" or "a" is not a string.
	ErrBadMessage = errors.New("malformed message")
	// ErrUnknownType is a message type other than topic, notif and health.
	ErrUnknownType = errors.New("unknown message type")
	// ErrUnknownAction is an action its type does not have.
	ErrUnknownAction = errors.New("unknown action")
	// ErrBadPayload is a payload ("p") of the wrong shape for its action.
	ErrBadPayload = errors.New("malformed payload")
	// ErrNoConsumerGroup is a subscribe without consumer_group when
	// websocket.default_consumer_group is empty.
	ErrNoConsumerGroup = errors.New("consumer_group is required (this kproxy has no websocket.default_consumer_group)")
	// ErrTooManySubscriptions is a subscribe to one more consumer group than
	// websocket.devicehive.max_subscriptions allows.
	ErrTooManySubscriptions = errors.New("too many subscriptions on this connection")
	// ErrTopicCreateDisabled is a topic create while
	// websocket.devicehive.allow_topic_create is false.
	ErrTopicCreateDisabled = errors.New("topic creation is disabled on this kproxy")
	// ErrJoinTimeout is a subscribe whose consumer group did not assign
	// partitions within the join timeout.
	ErrJoinTimeout = errors.New("the consumer group did not complete a join in time")
)

// Machine codes of the protocol's own errors; the others are the core's
// (proxy.Code*).
const (
	CodeBadJSON              = "bad_json"
	CodeBadMessage           = "bad_message"
	CodeUnknownType          = "unknown_type"
	CodeUnknownAction        = "unknown_action"
	CodeBadPayload           = "bad_payload"
	CodeNoConsumerGroup      = "no_consumer_group"
	CodeTooManySubscriptions = "too_many_subscriptions"
	CodeTopicCreateDisabled  = "topic_create_disabled"
	CodeJoinTimeout          = "join_timeout"
)

// Status maps an error to the status "s" of its reply and its machine code.
// It is the one place that does: the protocol's own errors here, the core's
// (and Kafka's, which the core classifies) through proxy.Code. Statuses are
// the HTTP statuses of the same meaning, as /commit answers them; upstream
// clients only test s != 0.
func Status(err error) (s int, code string) {
	switch {
	case errors.Is(err, ErrBadJSON):
		return 400, CodeBadJSON
	case errors.Is(err, ErrBadMessage):
		return 400, CodeBadMessage
	case errors.Is(err, ErrUnknownType):
		return 400, CodeUnknownType
	case errors.Is(err, ErrUnknownAction):
		return 400, CodeUnknownAction
	case errors.Is(err, ErrBadPayload):
		return 400, CodeBadPayload
	case errors.Is(err, ErrNoConsumerGroup):
		return 400, CodeNoConsumerGroup
	case errors.Is(err, ErrTooManySubscriptions):
		return 429, CodeTooManySubscriptions
	case errors.Is(err, ErrTopicCreateDisabled):
		return 403, CodeTopicCreateDisabled
	case errors.Is(err, ErrJoinTimeout):
		return 504, CodeJoinTimeout
	}
	code = proxy.Code(err)
	switch code {
	case proxy.CodeMissingTopic, proxy.CodeInvalidTopic, proxy.CodeInvalidKey, proxy.CodeEmptyBody:
		return 400, code
	case proxy.CodeUnauthorized:
		return 401, code
	case proxy.CodeTopicNotAllowed:
		return 403, code
	case proxy.CodeUnknownTopic, proxy.CodeUnknownPartition:
		return 404, code
	case proxy.CodeBodyTooLarge:
		return 413, code
	case proxy.CodeKafkaTimeout:
		return 504, code
	case proxy.CodeCanceled:
		return 499, code
	default: // backpressure, shutting_down, kafka_unavailable
		return 503, code
	}
}
