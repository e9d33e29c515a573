#!/bin/sh
# protoc-gen-go.sh runs protoc-gen-go at the google.golang.org/protobuf version
# go.mod requires, so the generated code matches the runtime it is built with.
# protoc starts it as its Go plugin (see the go:generate line in pubsub.go).
cd "$(dirname "$0")" && exec go run google.golang.org/protobuf/cmd/protoc-gen-go "$@"
