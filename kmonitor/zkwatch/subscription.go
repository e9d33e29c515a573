package zkwatch

import (
	"encoding/json"
	"fmt"
	"slices"
)

// maxSubscriptionTopics bounds the topics taken from one registration: ktransfer
// registers one, a Kafka 0.8 consumer a few.
const maxSubscriptionTopics = 100

// parseSubscription returns the topics an instance's registration under ids/
// subscribes to, sorted and without repeats. Only a static subscription names
// topics (a white or black list names patterns); names Kafka would not accept
// are left out, and at most maxSubscriptionTopics are taken.
func parseSubscription(data []byte) ([]string, error) {
	var reg struct {
		Subscription map[string]json.RawMessage `json:"subscription"`
		Pattern      string                     `json:"pattern"`
	}
	if err := json.Unmarshal(data, &reg); err != nil {
		return nil, fmt.Errorf("registration is not JSON with a subscription: %w", err)
	}
	if reg.Pattern != "" && reg.Pattern != "static" {
		return nil, nil
	}
	topics := make([]string, 0, len(reg.Subscription))
	for t := range reg.Subscription {
		if legalTopic(t) {
			topics = append(topics, t)
		}
	}
	slices.Sort(topics)
	if len(topics) > maxSubscriptionTopics {
		topics = topics[:maxSubscriptionTopics]
	}
	return topics, nil
}

// legalTopic reports whether Kafka accepts t as a topic name: 1..249 characters
// of [a-zA-Z0-9._-], and not "." or "..".
func legalTopic(t string) bool {
	if len(t) == 0 || len(t) > 249 || t == "." || t == ".." {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
